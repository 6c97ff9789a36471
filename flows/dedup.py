"""The product: find the near-duplicate groups under folders, at scale, with everything in DuckDB.

    files (walk, sha256 of new or changed files) -> features (decode once: pHash + embedding of what is
    missing) -> candidates (pHash radius search, embedding top-k) -> verify -> groups -> DuckDB + outputs

The steps are the library's (``maya.dedup.pipeline.run_dedup``); this flow runs them with its tasks (threads,
or a Dask cluster with ``dask_address``) and writes the outputs. Only this flow's process writes DuckDB.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from maya import dedup as lib
from maya.dedup.options import CLIP_NEIGHBOURS, PHASH_ACCEPT, PHASH_RADIUS, DedupOptions
from maya.dedup.sensitivity import Sensitivity
from maya.flows.runners import dask_in_flight, run_on_cluster
from maya.io.selection import FileSelection
from maya.settings import load_settings
from maya.tasks import dedup as tasks
from maya.tasks import features as feature_tasks

#: Batches in flight on the thread runner: one decodes while another is hashed and embedded.
IN_FLIGHT_THREADS = 2


@flow(name="dedup")
def dedup(paths: list[str], mode: str = "hybrid", data_dir: str | None = None, model: str | None = None,
          device: str | None = None, precision: str | None = None, batch_size: int | None = None,
          phash_accept: int = PHASH_ACCEPT, phash_radius: int = PHASH_RADIUS, clip_verify: float | None = None,
          clip_strict: float | None = None, clip_k: int = CLIP_NEIGHBOURS, split_chains: bool = False,
          follow_symlinks: bool = False, include_hidden: bool = False, exclude: list[str] | None = None,
          max_pixels: int | None = None, json_path: str | None = None, csv_path: str | None = None,
          html_path: str | None = None, dask_address: str | None = None, progress: bool = False,
          calibration: str | None = None, grouping: str = "star", clip_veto: float | None = None,
          keep: str = "source", prefer: list[str] | None = None,
          selection: dict | None = None, sensitivity: str = "normal", given: list[str] | None = None,
          views: bool = True, extra_views: list[str] | None = None, clip_local_floor: float | None = None,
          clip_local_margin: float | None = None, clip_majority: float | None = None,
          clip_majority_margin: float | None = None, phash_majority: bool = True, grid_floor: float | None = None,
          grid_agree: float | None = None) -> dict:
    """Find the duplicate groups under ``paths``; write DuckDB and the requested outputs.

    ``exclude``: folders not to enter (Maya's data folder is always left out). ``selection``: file filters
    (``maya.io.selection.FileSelection.as_dict``); ``sensitivity``, ``given``: ``maya.dedup.sensitivity``.
    ``dask_address``: ``"tcp://host:8786"`` or ``"local"`` runs the tasks on a Dask cluster (a subflow
    with Prefect's Dask task runner); None: threads in this process. Returns a summary dict: ``run_id``,
    ``report`` (the JSON structure of :func:`maya.dedup.pipeline.find_duplicates`), ``counts``,
    ``skipped``, ``model_id``, ``options``, ``outputs``.
    """
    params = {k: v for k, v in locals().items() if k != "dask_address"}
    if dask_address:
        return run_on_cluster(dedup_on_cluster, dask_address, in_flight=None, **params)
    return _dedup(in_flight=IN_FLIGHT_THREADS, **params)


@flow(name="dedup-on-cluster")
def dedup_on_cluster(**params) -> dict:
    """The same steps as ``dedup``, run by the task runner this subflow was given (Dask)."""
    return _dedup(**{**params, "in_flight": params.get("in_flight") or dask_in_flight()})


def _dedup(paths, mode, data_dir, model, device, precision, batch_size, phash_accept, phash_radius, clip_verify,
           clip_strict, clip_k, split_chains, follow_symlinks, include_hidden, exclude, max_pixels, json_path,
           csv_path, html_path, progress, in_flight, calibration=None, grouping="star",
           clip_veto=None, keep="source", prefer=None, selection=None, sensitivity="normal", given=None,
           views=True, extra_views=None, **vote_and_local) -> dict:
    from prefect.runtime import flow_run

    options = DedupOptions(mode, phash_accept, phash_radius, clip_verify, clip_strict, clip_k, split_chains, grouping,
                           clip_veto, keep, tuple(prefer or ()), views, tuple(extra_views or ()), **vote_and_local)
    s = load_settings(data_dir=data_dir, model=model, device=device, precision=precision, batch_size=batch_size)
    max_pixels = max_pixels or s.max_pixels
    runner = lib.Runner(sha256_files=tasks.sha256_files.submit, image_features=feature_tasks.image_features.submit,
                        candidate_pairs=tasks.candidate_pairs, verify_pairs=tasks.verify_pairs,
                        duplicate_groups=tasks.duplicate_groups, in_flight=in_flight)
    run = lib.run_dedup(paths, options, db_path=s.db_path, model=s.model, device=s.device, precision=s.precision,
                        batch_size=s.batch_size, max_pixels=max_pixels, follow_symlinks=follow_symlinks,
                        include_hidden=include_hidden, exclude=[*(exclude or ()), str(s.data_dir)],
                        progress=progress, runner=runner, flow_run_id=str(flow_run.get_id() or ""),
                        parameters={"max_pixels": max_pixels}, calibration=calibration,
                        selection=FileSelection.from_dict(selection),
                        sensitivity=Sensitivity(sensitivity, frozenset(given or ())))
    if run.errors:
        get_run_logger().info("%d file(s) could not be used, e.g. %s", len(run.errors), run.errors[0].error)
    outputs = lib.write_outputs(run.report, run.groups, json_path=json_path, csv_path=csv_path, html_path=html_path)
    return {"run_id": run.run_id, "report": run.report, "counts": run.counts, "skipped": run.skipped,
            "model_id": run.model_id, "options": run.options.as_dict(), "outputs": outputs}
