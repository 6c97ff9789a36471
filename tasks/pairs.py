"""Pair generation and import tasks.

Pair generation is cached by content (task identity and source, the source of :mod:`maya.pairs.build`,
:mod:`maya.pairs.transforms` and what they decode and hash with, the parameters, and a fingerprint of the
source folder and of a groups CSV), so an unchanged rerun loads the PairSet from the result store instead
of decoding and editing every original again. The flow gives it a result store in the data folder
(``<data_dir>/task-results``), next to the derived images the PairSet points at, and re-runs a cached
build whose derived images are gone.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from maya.pairs import build as pairs
from maya.tasks.policies import content_key_with, transient_only

_PAIR_CODE = ("maya.pairs.build", "maya.pairs.transforms", "maya.io.images", "maya.hashing.phash")


@task(name="generate-pairs", retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=transient_only,
      cache_key_fn=content_key_with(code=_PAIR_CODE, paths=("source", "options.groups")), persist_result=True)
def generate_pairs(source: str, images_dir: str, seed: int, options: dict) -> pairs.PairSet:
    """Pairs built from the originals in ``source``; derived images are written under ``images_dir``."""
    return pairs.build_pairs(source, images_dir, seed=seed, progress=True, **options)


# Not cached: what an import produces depends on the bytes of every image the CSV names, and hashing
# those bytes is the whole cost of an import, so a key would cost as much as the work.
@task(name="import-pairs", retries=2, retry_delay_seconds=[1, 4], retry_condition_fn=transient_only,
      cache_policy=NO_CACHE)
def import_pairs(csv_path: str, seed: int) -> pairs.PairSet:
    """Labelled pairs read from a CSV (``a,b,label[,kind][,split]``)."""
    return pairs.import_pairs(csv_path, seed=seed)
