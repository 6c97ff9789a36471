"""Dedup tasks: identify files, find pairs, form groups (features: ``maya.tasks.features``).

Each body is one call into the library (``maya.dedup``); what is added here is orchestration: retries of
transient I/O errors and no Prefect cache. Workers (threads, or Dask processes) only compute and return
small results; the flow's process writes DuckDB. Features are cached by content in DuckDB (the library
asks only for what is missing), so these tasks are not Prefect-cached.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from maya.dedup import candidates, groups
from maya.io import ingest
from maya.tasks.policies import transient_only


@task(name="sha256-files", retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=transient_only,
      cache_policy=NO_CACHE)
def sha256_files(paths: list[str]):
    """(sha256, None) or (None, problem) for each path, in order."""
    return ingest.sha256_files(paths)


@task(name="candidate-pairs", cache_policy=NO_CACHE)
def candidate_pairs(images: candidates.Images, options):
    return candidates.candidate_pairs(images, options)


@task(name="verify-pairs", cache_policy=NO_CACHE)
def verify_pairs(images: candidates.Images, a, b, options) -> candidates.Pairs:
    return candidates.verify_pairs(images, a, b, options)


@task(name="duplicate-groups", cache_policy=NO_CACHE)
def duplicate_groups(images: candidates.Images, files, pairs: candidates.Pairs, options, roots=()):
    return groups.duplicate_groups(images, files, pairs, options, roots)
