"""Stability of the study: the evaluate flow once per seed, then mean, std and bootstrap interval of test F1.

    for each seed: pairs "<dataset>@seed<k>" from the same source -> evaluate (a subflow, its own run)
    -> stability rows (split = 'stability') under one parent run (flow 'evaluate-repeats')

The logic is :func:`maya.evaluation.stability.run_repeats`; this flow gives it the ``evaluate`` subflow.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from maya.evaluation.stability import N_BOOTSTRAP, run_repeats
from maya.evaluation.stability import recorded_source, repeat_dataset_name  # noqa: F401  (importable from here)
from maya.flows.evaluate import evaluate


@flow(name="evaluate-repeats", log_prints=True)
def evaluate_repeats(
    dataset: str = "demo",
    source: str | None = None,
    seeds: list[int] | None = None,
    model: str | None = None,
    data_dir: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int | None = None,
    methods: list[str] | None = None,
    pair_options: dict | None = None,
    confidence: float = 0.95,
    n_boot: int = N_BOOTSTRAP,
    bootstrap_seed: int = 0,
) -> dict:
    """Run ``flows.evaluate.evaluate`` once per seed and store the spread of test F1 per method.

    The pairs of each repeat are built from ``source`` (or, when None, from the source folder and pair
    options recorded for ``dataset``) into the dataset ``"<dataset>@seed<k>"``; an existing one with the
    same parameters is reused, and cached hashes and embeddings are never recomputed. The stability rows
    go to ``metrics`` (split 'stability') under a parent run with flow 'evaluate-repeats'; each repeat's
    own run gets ``parent_run_id`` set to it.

    Returns: {"run_id", "dataset", "seeds", "runs": [per repeat: run_id, dataset, seed, results],
    "stability": stability rows as a list of dicts}.
    """
    params = dict(locals())
    from prefect.runtime import flow_run

    return run_repeats(**params, evaluate_one=evaluate, flow_run_id=str(flow_run.get_id() or ""),
                       log=get_run_logger())
