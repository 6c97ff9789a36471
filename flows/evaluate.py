"""The study as a Prefect flow: :func:`maya.evaluation.study.run_study` with Prefect tasks as its steps.

    generate-pairs -> image-features, batch by batch -> scores -> evaluate-scores -> DuckDB
     (task cache)     (the flow's task runner: threads or Dask)    (task cache)

Pair generation and the sweeps are cached by content (task identity, the code that does the work, inputs,
a fingerprint of the source folder), their results stored in ``<data_dir>/task-results``; ``refresh=True``
recomputes them. Feature batches run on the flow's task runner; only the flow's process writes DuckDB.
"""

from __future__ import annotations

from functools import partial

from prefect import flow, get_run_logger

from maya.evaluation import study
from maya.evaluation.study import predicted_model_id, task_results_dir  # noqa: F401  (importable from here)
from maya.flows.runners import dask_in_flight, run_on_cluster
from maya.tasks import evaluate as evaluate_tasks
from maya.tasks import features as feature_tasks
from maya.tasks import pairs as pair_tasks


def _cached(task, *args, results, refresh: bool):
    """(result, "cached" | "computed") of a cached task, its results stored under ``results``."""
    state = task.with_options(result_storage=results, refresh_cache=refresh or None)(*args, return_state=True)
    return state.result(), ("cached" if state.name == "Cached" else "computed")


@flow(name="evaluate", log_prints=True)
def evaluate(
    dataset: str = "demo",
    source: str | None = None,
    seed: int = 0,
    model: str | None = None,
    data_dir: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int | None = None,
    methods: list[str] | None = None,
    pair_options: dict | None = None,
    replace: bool = False,
    refresh: bool = False,
    dask_address: str | None = None,
    extra_views: list[str] | None = None,
) -> dict:
    """Score every pair of ``dataset`` with pHash and the embedding model and evaluate all methods.

    Parameters:
        dataset: name of the labelled pair set in the store.
        source: folder of originals; when given, the dataset's pairs are generated from it first
            (same seed -> same pairs; an unchanged rerun takes them from the task cache).
        seed: seed of pair generation.
        model, device, precision, batch_size: the embedding model and where it runs (None: settings,
            i.e. env ``MAYA_*`` or defaults).
        data_dir: folder of the DuckDB file, derived images and cached task results.
        methods: subset of phash, clip, hybrid, cascade (default all).
        pair_options: keyword options of pair generation (positives_per_original, ...).
        replace: rebuild the dataset if it exists with other parameters or other content.
        refresh: recompute the cached tasks (pair generation, evaluation) and retry images that failed
            for good before; stored hashes and embeddings are still reused (they are keyed by content).
        dask_address: ``"tcp://host:8786"`` (an existing Dask cluster) or ``"local"`` (a temporary local
            cluster) runs the feature tasks there; None: threads in this process.
        extra_views: fixed extra views to compute and compare too (``maya.views.EXTRA_VIEWS``, e.g.
            ``["centre"]``), as dedup's ``extra_views``, so the study and dedup see the same views.

    Returns the summary of :func:`maya.evaluation.study.run_study` (run_id, counts, results, cache, ...).
    """
    params = {k: v for k, v in locals().items() if k != "dask_address"}
    if dask_address:
        return run_on_cluster(evaluate_on_cluster, dask_address, task_runner=dask_address, **params)
    return _evaluate(task_runner="threads", **params)


@flow(name="evaluate-on-cluster", log_prints=True)
def evaluate_on_cluster(**params) -> dict:
    """The same steps as ``evaluate``, with the task runner this subflow was given (Dask)."""
    return _evaluate(**params)


def _evaluate(task_runner: str, **params) -> dict:
    from prefect.runtime import flow_run

    steps = study.StudySteps(
        submit_features=feature_tasks.image_features.submit,
        in_flight=study.IN_FLIGHT_THREADS if task_runner == "threads" else dask_in_flight(),
        generate_pairs=partial(_cached, pair_tasks.generate_pairs),
        evaluate_scores=partial(_cached, evaluate_tasks.evaluate_scores),
        task_runner=task_runner,
    )
    return study.run_study(**params, steps=steps, flow_run_id=str(flow_run.get_id() or ""), log=get_run_logger())
