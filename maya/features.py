"""Features per image, decoded once: pHash bits and embeddings, computed in batches.

A batch is prepared once (read, decode at reduced scale, EXIF-orient, RGB) and both stages use it:
pHash takes the 32x32 grey thumbnails, the embedder takes its model input tensor. Failures become
records with a reason; they never stop the batch.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

#: Decoded images keep at least this shorter side (covers 224-px model inputs; pHash needs 32).
DECODE_MIN_SIDE = 256


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to build the same embedder as the flow (picklable, for Dask)."""

    name: str
    device: str | None = None
    precision: str = "auto"
    batch_size: int | None = None


@functools.lru_cache(maxsize=4)
def get_embedder(spec: ModelSpec):
    """One embedder per process and spec (model weights are loaded once)."""
    from maya.embedding.models import load_embedder

    return load_embedder(spec.name, device=spec.device, precision=spec.precision, batch_size=spec.batch_size)


@dataclass
class ImageRecord:
    sha256: str
    size_bytes: int | None
    width: int | None
    height: int | None
    format: str | None
    status: str
    error: str | None = None


@dataclass
class PreparedBatch:
    """Images of one batch, decoded once. Arrays are aligned with ``ok``."""

    records: list[ImageRecord] = field(default_factory=list)  # one per requested image
    ok: list[str] = field(default_factory=list)  # sha256 of decoded images
    gray32: np.ndarray | None = None  # (n_ok, 32, 32) float64, for pHash
    model_input: object | None = None  # torch.Tensor (n_ok, 3, S, S), for the embedder


def _load_one(item: tuple[str, str], max_pixels: int | None, min_side: int):
    from maya.io import images as imageio

    sha, path = item
    kw = {"min_side": min_side}
    if max_pixels:
        kw["max_pixels"] = max_pixels
    try:
        loaded = imageio.load_image(path, **kw)
    except imageio.ImageLoadError as e:
        return None, ImageRecord(sha, None, None, None, None, "error", str(e))
    if loaded.sha256 != sha:
        msg = f"changed: {path}: the file's content changed since it was registered"
        return None, ImageRecord(sha, loaded.size_bytes, None, None, None, "error", msg)
    rec = ImageRecord(sha, loaded.size_bytes, loaded.width, loaded.height, loaded.format, "ok")
    return loaded, rec


def default_workers() -> int:
    """Decode / edit threads: one per core, at most 8 (Pillow, numpy and zlib release the GIL)."""
    return max(1, min(8, os.cpu_count() or 1))


def prepare_batch(
    items: Sequence[tuple[str, str]],
    *,
    want_hash: bool = True,
    model: ModelSpec | None = None,
    max_pixels: int | None = None,
    workers: int | None = None,
) -> PreparedBatch:
    """Decode ``items`` ((sha256, path) pairs) once, in a thread pool; build pHash and model inputs."""
    from maya.hashing import phash

    embedder = get_embedder(model) if model is not None else None
    min_side = max(DECODE_MIN_SIDE, getattr(embedder, "input_size", 0) or 0)
    workers = workers or default_workers()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda it: _load_one(it, max_pixels, min_side), items))
    out = PreparedBatch(records=[r for _, r in results])
    images = [loaded.image for loaded, _ in results if loaded is not None]
    out.ok = [loaded.sha256 for loaded, _ in results if loaded is not None]
    if images and want_hash:
        out.gray32 = np.stack([phash.gray32(im) for im in images])
    if images and embedder is not None:
        out.model_input = embedder.preprocess(images)
    return out


def hash_batch(batch: PreparedBatch) -> tuple[list[str], np.ndarray]:
    """pHash bits (uint64) of the decoded images of ``batch``."""
    from maya.hashing import phash

    if batch.gray32 is None:
        return [], np.zeros(0, dtype=np.uint64)
    return list(batch.ok), phash.phash_bits_from_gray(batch.gray32)


def embed_batch(batch: PreparedBatch, model: ModelSpec) -> tuple[list[str], np.ndarray]:
    """L2-normalised embeddings (float32, (n, dim)) of the decoded images of ``batch``."""
    if batch.model_input is None:
        return [], np.zeros((0, 0), dtype=np.float32)
    embedder = get_embedder(model)
    return list(batch.ok), embedder.embed_tensor(batch.model_input)


@dataclass
class FeatureBatch:
    """What one feature batch produced: small and picklable (no pixels, no tensors), so a Dask worker can
    return it to the flow's process. ``hash_bits`` uint64 (n,); ``vectors`` float32 (m, dim), unit rows."""

    records: list[ImageRecord]  # one per requested image
    hash_shas: list[str]
    hash_bits: np.ndarray
    embed_shas: list[str]
    vectors: np.ndarray | None
    worker_pid: int = field(default_factory=os.getpid)  # which process computed it


def compute_batch(items: Sequence[tuple[str, str]], want_hash: bool, model: ModelSpec | None,
                  max_pixels: int | None) -> FeatureBatch:
    """Decode ``items`` ((sha256, path) pairs) once; pHash them (if ``want_hash``) and embed them with
    ``model`` (if not None). Files that cannot be used are records with a reason, never exceptions."""
    prepared = prepare_batch(items, want_hash=want_hash, model=model, max_pixels=max_pixels)
    h_shas, bits = hash_batch(prepared) if want_hash else ([], np.zeros(0, dtype=np.uint64))
    e_shas, vecs = embed_batch(prepared, model) if model is not None else ([], None)
    return FeatureBatch(
        records=list(prepared.records), hash_shas=list(h_shas), hash_bits=np.asarray(bits, dtype=np.uint64),
        embed_shas=list(e_shas),
        vectors=None if vecs is None or len(e_shas) == 0 else np.ascontiguousarray(vecs, dtype=np.float32),
    )
