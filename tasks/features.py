"""The feature task: decode a batch of images once, pHash it and embed it, return small results.

Runs on a thread of the flow's process or on a Dask worker. What crosses the process boundary is small
and picklable: in, (sha256, path) pairs and a ``ModelSpec``; out, a :class:`FeatureBatch` of image records,
64-bit hashes and embedding rows (no pixels, no tensors). The content cache lives in DuckDB (the flow asks
only for missing features), so this task is not Prefect-cached. A batch is retried only for transient I/O
errors; a file that cannot be decoded is a record with a reason, not an exception.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from maya import features
from tasks.policies import transient_only


@dataclass
class FeatureBatch:
    """What one batch produced. ``hash_bits`` is uint64 (n,); ``vectors`` float32 (m, dim), unit rows."""

    records: list  # maya.features.ImageRecord, one per requested image
    hash_shas: list[str]
    hash_bits: np.ndarray
    embed_shas: list[str]
    vectors: np.ndarray | None
    worker_pid: int  # which process computed it (threads: the flow's own)


def features_of_batch(items, want_hash: bool, model: features.ModelSpec | None,
                      max_pixels: int | None) -> FeatureBatch:
    """Decode ``items`` ((sha256, path) pairs) once; pHash (if ``want_hash``) and embed (if ``model``)."""
    prepared = features.prepare_batch(items, want_hash=want_hash, model=model, max_pixels=max_pixels)
    h_shas, bits = features.hash_batch(prepared) if want_hash else ([], np.zeros(0, dtype=np.uint64))
    e_shas, vecs = features.embed_batch(prepared, model) if model is not None else ([], None)
    return FeatureBatch(
        records=list(prepared.records), hash_shas=list(h_shas), hash_bits=np.asarray(bits, dtype=np.uint64),
        embed_shas=list(e_shas),
        vectors=None if vecs is None or len(e_shas) == 0 else np.ascontiguousarray(vecs, dtype=np.float32),
        worker_pid=os.getpid(),
    )


@task(name="image-features", retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=transient_only,
      cache_policy=NO_CACHE)
def image_features(items, want_hash: bool, model: features.ModelSpec | None, max_pixels: int | None) -> FeatureBatch:
    """Task form of :func:`features_of_batch`."""
    return features_of_batch(items, want_hash, model, max_pixels)
