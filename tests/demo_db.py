"""A store made the way `maya demo` makes one, shared by the report, query and stability tests.

Use it from a test module with ``from tests.demo_db import demo_store  # noqa: F401``. The store is built
once per test session (a module-level cache, because pytest makes one fixture instance per importing
module): an ``evaluate-repeats`` run over two seeds (so two ``evaluate`` runs and stability rows), then a
plain rerun of the first repeat's dataset (the latest evaluate run, with a previous run to compare with).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

#: Pair options small enough for a 2-core CI box, large enough for every method to make mistakes.
PAIR_OPTIONS = {"positives_per_original": 5}
SEEDS = (0, 1)


@dataclass(frozen=True)
class DemoStore:
    data_dir: Path
    db_path: Path
    source: Path
    model: str
    repeats_run: int  # the 'evaluate-repeats' run
    repeat_runs: tuple[int, ...]  # its 'evaluate' runs, one per seed
    rerun: int  # a second evaluate run of the first repeat's dataset: the latest evaluate run
    repeats_summary: dict
    rerun_summary: dict


_BUILT: dict[tuple[str, str], DemoStore] = {}


def build_demo_store(root: Path, photo_dir: Path, tiny_clip_dir: Path) -> DemoStore:
    """Build (or return the already built) demo store for these photos and model."""
    key = (str(photo_dir), str(tiny_clip_dir))
    if key in _BUILT:
        return _BUILT[key]
    from maya.flows.evaluate import evaluate
    from maya.flows.stability import evaluate_repeats, repeat_dataset_name

    data = Path(root)
    model = str(tiny_clip_dir)
    rep = evaluate_repeats(dataset="demo", source=str(photo_dir), seeds=list(SEEDS), model=model,
                           data_dir=str(data), pair_options=dict(PAIR_OPTIONS), n_boot=2000)
    again = evaluate(dataset=repeat_dataset_name("demo", SEEDS[0]), model=model, data_dir=str(data))
    built = DemoStore(
        data_dir=data, db_path=data / "maya.duckdb", source=Path(photo_dir), model=model,
        repeats_run=rep["run_id"], repeat_runs=tuple(r["run_id"] for r in rep["runs"]), rerun=again["run_id"],
        repeats_summary=rep, rerun_summary=again,
    )
    _BUILT[key] = built
    return built


@pytest.fixture(scope="session")
def demo_store(prefect_server, photo_dir, tiny_clip_dir, tmp_path_factory) -> DemoStore:
    key = (str(photo_dir), str(tiny_clip_dir))
    root = _BUILT[key].data_dir if key in _BUILT else tmp_path_factory.mktemp("demo-store")
    return build_demo_store(root, photo_dir, tiny_clip_dir)
