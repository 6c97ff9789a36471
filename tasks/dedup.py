"""Dedup tasks: identify files, compute features, find pairs, form groups.

Workers (threads, or Dask processes) only compute and return small results; the flow's process writes
DuckDB. File reading retries transient I/O errors. Features are cached by content in DuckDB (the flow
asks only for what is missing), so these tasks are not Prefect-cached.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from maya import features
from maya.dedup import engine as dedup
from maya.io import ingest
from maya.tasks.policies import transient_only


@task(name="sha256-files", retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=transient_only,
      cache_policy=NO_CACHE)
def sha256_files(paths: list[str]):
    """(sha256, None) or (None, problem) for each path, in order."""
    return ingest.sha256_files(paths)


@task(name="image-features", retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=transient_only,
      cache_policy=NO_CACHE)
def image_features(items, want_hash: bool, model, max_pixels: int | None) -> features.FeatureBatch:
    """Decode one batch once; its pHash bits and embeddings (no pixels are returned)."""
    return dedup.batch_features(items, want_hash, model, max_pixels)


@task(name="candidate-pairs", cache_policy=NO_CACHE)
def candidate_pairs(images: dedup.Images, options: dedup.DedupOptions):
    return dedup.candidate_pairs(images, options)


@task(name="verify-pairs", cache_policy=NO_CACHE)
def verify_pairs(images: dedup.Images, a, b, options: dedup.DedupOptions) -> dedup.Pairs:
    return dedup.verify_pairs(images, a, b, options)


@task(name="duplicate-groups", cache_policy=NO_CACHE)
def duplicate_groups(images: dedup.Images, files, pairs: dedup.Pairs, options: dedup.DedupOptions):
    return dedup.duplicate_groups(images, files, pairs, options)
