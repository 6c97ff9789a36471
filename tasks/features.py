"""Preprocessing, pHash and embedding tasks. The content cache lives in DuckDB (the flow asks only for
missing features), so these tasks are not Prefect-cached; they retry transient I/O errors."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from maya import features
from tasks.policies import transient_only


@task(name="preprocess", retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=transient_only,
      cache_policy=NO_CACHE)
def preprocess(items, want_hash: bool, model: features.ModelSpec | None, max_pixels: int | None):
    """Read and decode a batch once (thread pool), producing pHash and model inputs."""
    return features.prepare_batch(items, want_hash=want_hash, model=model, max_pixels=max_pixels)


@task(name="phash", retries=1, retry_condition_fn=transient_only, cache_policy=NO_CACHE)
def phash(batch: features.PreparedBatch):
    return features.hash_batch(batch)


@task(name="embed", retries=1, retry_condition_fn=transient_only, cache_policy=NO_CACHE)
def embed(batch: features.PreparedBatch, model: features.ModelSpec):
    return features.embed_batch(batch, model)
