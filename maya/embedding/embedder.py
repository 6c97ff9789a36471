"""The embedder interface (:class:`Embedder`), its torch kinds (CLIP, EfficientNet), and batched embedding.

An embedder returns float32 rows (N, d) of unit L2 norm, so a dot product is a cosine similarity.
A batch that runs out of GPU memory is halved and retried (:func:`_run_with_backoff`);
:func:`embed_stream` keeps the device fed from a stream of images.
"""

from __future__ import annotations


import itertools
import logging
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from maya.embedding.devices import torch_dtype

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from PIL import Image

from maya.embedding.preprocessing import ImagePreprocessing, versioned_model_id

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


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

    The interface every runtime implements (:class:`TorchEmbedder`, ``maya.embedding.onnx_runtime.OnnxEmbedder``):
    :meth:`preprocess` PIL images into the model's input, :meth:`embed_tensor` a batch of that input (or of
    uint8 pixels from :meth:`ImagePreprocessing.to_uint8`), :meth:`embed_images` both, batched.

    Attributes:
        name: what the user asked for (hub id, folder, or ``"efficientnet-lite0"``).
        model_id: cache key for stored embeddings; identifies weights, preprocessing and precision
            (not the runtime: the runtimes give the same vectors to float rounding).
        dim: embedding length.
        device: where the model runs (``.type`` is ``"cpu"``, ``"cuda"`` or ``"mps"``; ``str()`` names it).
        precision: ``"fp32" | "fp16" | "bf16"``.
        input_size: side of the square model input, pixels.
        preprocessing: the :class:`ImagePreprocessing` applied by :meth:`preprocess`.
        batch_size: default images per forward pass for :meth:`embed_images`.
        runtime: ``"torch"`` or ``"onnxruntime"``.
    """

    name: str
    model_id: str
    dim: int
    device: Any
    precision: str
    input_size: int
    runtime: str

    def _init_common(self, preprocessing: ImagePreprocessing, *, name: str, model_id_base: str, dim: int,
                     device: Any, precision: str, batch_size: int | None) -> None:
        self.name = name
        self.dim = int(dim)
        self.device = device
        self.precision = precision
        self.preprocessing = preprocessing
        self.input_size = preprocessing.output_hw[0]
        self.model_id = versioned_model_id(model_id_base, precision)
        self.batch_size = int(batch_size) if batch_size else default_batch_size(device)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model_id={self.model_id!r}, dim={self.dim}, "
                f"device={str(self.device)!r}, batch_size={self.batch_size})")

    def preprocess(self, images: Sequence["Image.Image"]) -> Any:
        """(N, 3, S, S) float32 model input, normalised for this model (S = ``input_size``)."""
        return self.preprocessing(images)

    def from_uint8(self, pixels: np.ndarray) -> Any:
        """Model input from stacked :meth:`ImagePreprocessing.to_uint8` pixels ((N, 3, S, S) uint8): what
        :meth:`preprocess` of the images gives, bit for bit (its second half)."""
        return self.preprocessing.normalize_array(pixels)

    def embed_tensor(self, batch: Any) -> np.ndarray:
        """Embed a batch: (N, dim) float32 numpy array of unit-L2-norm rows."""
        raise NotImplementedError

    def embed_images(self, images: Sequence["Image.Image"], batch_size: int | None = None) -> np.ndarray:
        """Embed PIL images: (N, dim) float32, unit-norm rows, in input order.

        Preprocessed and run ``batch_size`` at a time (default ``self.batch_size``), so memory
        holds one batch of model input.
        """
        step = batch_size or self.batch_size
        parts = [self.embed_tensor(self.preprocess(images[i:i + step])) for i in range(0, len(images), step)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)


class TorchEmbedder(Embedder):
    """An embedder whose model is a torch module (CPU, CUDA or MPS, in any precision)."""

    runtime = "torch"

    def __init__(self, model: "torch.nn.Module", preprocessing: ImagePreprocessing, *, name: str,
                 model_id_base: str, dim: int, device: "torch.device", precision: str,
                 batch_size: int | None = None):
        import torch

        self._init_common(preprocessing, name=name, model_id_base=model_id_base, dim=dim, device=device,
                          precision=precision, batch_size=batch_size)
        self._fits: int | None = None  # largest batch known to fit in device memory, after an OOM
        # Every forward pass runs on one thread of the embedder's own, one at a time. The feature loop keeps
        # two batches in flight so that decoding overlaps the model; passes run from both of its threads
        # would each start a set of intra-op threads (4 on 2 cores) and each leave ~150 MiB of freed
        # activations in that thread's malloc arena (peak RSS of a 100-photo dedup: 674 -> ~480 MiB).
        self._forward_thread: ThreadPoolExecutor | None = None
        self._forward_lock = threading.Lock()
        # On the CPU bf16 runs under autocast (layer norms and softmax stay fp32); on a GPU the
        # weights themselves are cast, which is faster and accurate enough for fp16/bf16.
        self._autocast_cpu_bf16 = device.type == "cpu" and precision == "bf16"
        self._input_dtype = torch.float32 if device.type == "cpu" else torch_dtype(precision)
        model = model.eval().to(device)
        if self._input_dtype != torch.float32:
            model = model.to(self._input_dtype)
        self.model = model

    def preprocess(self, images: Sequence["Image.Image"]) -> "torch.Tensor":
        """(N, 3, S, S) float32 CPU tensor, normalised for this model (S = ``input_size``)."""
        import torch

        return torch.from_numpy(self.preprocessing(images))

    def embed_tensor(self, batch: "torch.Tensor | np.ndarray") -> np.ndarray:
        """Embed a batch: (N, dim) float32 numpy array of unit-L2-norm rows.

        ``batch`` is (N, 3, S, S), either float32 from :meth:`preprocess` or uint8 pixels from
        :meth:`ImagePreprocessing.to_uint8` (normalised on the device: 4x less to copy to a GPU), as a
        tensor or a numpy array. If the device runs out of memory the batch is split in halves (down to
        single images) and the size that fits is remembered for later calls.
        """
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if isinstance(batch, np.ndarray):
            import torch

            batch = torch.from_numpy(batch)
        size = min(len(batch), self._fits or len(batch))
        parts = _run_with_backoff(self._embed_once, batch, size, _is_out_of_memory, on_oom=self._shrink)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _embed_once(self, batch: "torch.Tensor") -> np.ndarray:
        with self._forward_lock:
            if self._forward_thread is None:
                self._forward_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maya-forward")
        return self._forward_thread.submit(self._forward, batch).result()

    def _forward(self, batch: "torch.Tensor") -> np.ndarray:
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


class CLIPEmbedder(TorchEmbedder):
    """CLIP image tower (``CLIPVisionModelWithProjection``): the projected image embedding."""

    def _features(self, x: "torch.Tensor") -> "torch.Tensor":
        return self.model(pixel_values=x).image_embeds


class EfficientNetEmbedder(TorchEmbedder):
    """EfficientNet-Lite0 trunk: last conv features, global-average-pooled (1280-d).

    On the CPU the net runs channels-last (NHWC): oneDNN's depthwise and 1x1 convolutions are about twice
    as fast in that layout as in NCHW (measured on 2 AVX-512 cores, batch 16), same outputs to ~1e-6."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._channels_last = self.device.type == "cpu"
        if self._channels_last:
            import torch

            self.model = self.model.to(memory_format=torch.channels_last)

    def _features(self, x: "torch.Tensor") -> "torch.Tensor":
        if self._channels_last:
            import torch

            x = x.contiguous(memory_format=torch.channels_last)
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

