"""The feature task: decode a batch of images once, pHash it and embed it, return small results.

Runs on a thread of the flow's process or on a Dask worker. What crosses the process boundary is small
and picklable: in, (sha256, path) pairs and a ``ModelSpec``; out, a :class:`maya.features.FeatureBatch` of image records,
64-bit hashes and embedding rows (no pixels, no tensors). The content cache lives in DuckDB (the flow asks
only for missing features), so this task is not Prefect-cached. A batch is retried only for transient I/O
errors; a file that cannot be decoded is a record with a reason, not an exception. It is the ``submit``
of :func:`maya.features.compute_missing` (for dedup and the study).
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from maya import features
from maya.tasks.policies import transient_only


@task(name="image-features", retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=transient_only,
      cache_policy=NO_CACHE)
def image_features(items, want_hash: bool, model: features.ModelSpec | None,
                   max_pixels: int | None, retry_delays: tuple[float, ...] = (),
                   views: bool = False) -> features.FeatureBatch:
    """Task form of :func:`maya.features.compute_batch` (``retry_delays``: per-file transient retries;
    ``views``: also the inner view boxes)."""
    return features.compute_batch(items, want_hash, model, max_pixels, retry_delays, views)
