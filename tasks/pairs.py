"""Pair generation and import tasks."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from maya import pairs
from tasks.policies import transient_only


@task(name="generate-pairs", retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=transient_only,
      cache_policy=NO_CACHE)
def generate_pairs(source: str, images_dir: str, seed: int, options: dict) -> pairs.PairSet:
    return pairs.build_pairs(source, images_dir, seed=seed, **options)


@task(name="import-pairs", retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=transient_only,
      cache_policy=NO_CACHE)
def import_pairs(csv_path: str, seed: int) -> pairs.PairSet:
    return pairs.import_pairs(csv_path, seed=seed)
