"""The product: find the near-duplicate groups under folders, at scale, with everything in DuckDB.

    files (walk, sha256 of new or changed files) -> features (decode once: pHash + embedding of what is
    missing) -> candidates (pHash radius search, embedding top-k) -> verify -> groups -> DuckDB + outputs

Only this flow's process writes DuckDB; tasks (threads, or Dask workers with ``dask_address``) return
results. Every batch of files and of features is written in one transaction, so a run killed at any
point leaves a consistent database and the next run computes only what is missing.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from maya.flows.runners import dask_in_flight, run_on_cluster
from maya.dedup import engine as lib
from maya import features, store
from maya.settings import load_settings
from maya.tasks import dedup as tasks


@flow(name="dedup")
def dedup(
    paths: list[str],
    mode: str = "hybrid",
    data_dir: str | None = None,
    model: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    batch_size: int | None = None,
    phash_accept: int = lib.PHASH_ACCEPT,
    phash_radius: int = lib.PHASH_RADIUS,
    clip_verify: float | None = None,
    clip_strict: float | None = None,
    clip_k: int = lib.CLIP_NEIGHBOURS,
    split_chains: bool = False,
    follow_symlinks: bool = False,
    include_hidden: bool = False,
    exclude: list[str] | None = None,
    max_pixels: int | None = None,
    json_path: str | None = None,
    csv_path: str | None = None,
    html_path: str | None = None,
    dask_address: str | None = None,
    progress: bool = False,
) -> dict:
    """Find the duplicate groups under ``paths``; write DuckDB and the requested outputs.

    ``exclude``: folders not to enter (Maya's data folder is always left out).
    ``dask_address``: ``"tcp://host:8786"`` or ``"local"`` runs the tasks on a Dask cluster (a subflow
    with Prefect's Dask task runner); None: threads in this process. Returns a summary dict: ``run_id``,
    ``report`` (the JSON structure of :func:`maya.dedup.engine.find_duplicates`), ``counts``, ``skipped``,
    ``model_id``, ``outputs``.
    """
    params = {k: v for k, v in locals().items() if k != "dask_address"}
    if dask_address:
        return run_on_cluster(dedup_on_cluster, dask_address, in_flight=None, **params)
    return _dedup(in_flight=IN_FLIGHT_THREADS, **params)


@flow(name="dedup-on-cluster")
def dedup_on_cluster(**params) -> dict:
    """The same steps as ``dedup``, run by the task runner this subflow was given (Dask)."""
    return _dedup(**{**params, "in_flight": params.get("in_flight") or dask_in_flight()})


#: Batches in flight on the thread runner: one decodes while another is hashed and embedded.
IN_FLIGHT_THREADS = 2


def _dedup(paths, mode, data_dir, model, device, precision, batch_size, phash_accept, phash_radius, clip_verify,
           clip_strict, clip_k, split_chains, follow_symlinks, include_hidden, exclude, max_pixels, json_path,
           csv_path, html_path, progress, in_flight) -> dict:
    from prefect.runtime import flow_run

    log = get_run_logger()
    options = lib.DedupOptions(mode, phash_accept, phash_radius, clip_verify, clip_strict, clip_k,
                               split_chains).check()
    roots = lib.check_roots(paths)
    settings = load_settings(data_dir=data_dir, model=model, device=device, precision=precision,
                             batch_size=batch_size)
    max_pixels = max_pixels or settings.max_pixels
    exclude = [*(exclude or ()), str(settings.data_dir)]
    spec, model_id, batch = None, None, settings.batch_size or lib.PHASH_BATCH
    if options.uses_embeddings:
        spec = features.ModelSpec(settings.model, settings.device, settings.precision, settings.batch_size)
        embedder = features.get_embedder(spec)  # fail fast, before reading any file
        model_id, batch = embedder.model_id, settings.batch_size or embedder.batch_size

    con = store.connect(settings.db_path)
    try:
        options = lib.measured_options(con, options, spec.name if spec else None, model_id)
        run_id = lib.start_dedup_run(
            con, roots, options, model_id,
            {"model": settings.model if spec else None, "batch_size": batch, "follow_symlinks": follow_symlinks,
             "include_hidden": include_hidden, "max_pixels": max_pixels},
            flow_run_id=str(flow_run.get_id() or ""))
        try:
            identified = lib.identify_files(con, roots, follow_symlinks=follow_symlinks,
                                            include_hidden=include_hidden, exclude=exclude,
                                            submit=tasks.sha256_files.submit, in_flight=in_flight,
                                            progress=progress)
            outcome = lib.compute_features(con, identified.files, options, model=spec, model_id=model_id,
                                           batch_size=batch, max_pixels=max_pixels,
                                           submit=tasks.image_features.submit, in_flight=in_flight,
                                           progress=progress)
            ok = [s for s in dict.fromkeys(f.sha256 for f in identified.files) if s not in outcome.problems]
            images = lib.load_images(con, ok, model_id)
            a, b = tasks.candidate_pairs(images, options)
            pairs = tasks.verify_pairs(images, a, b, options)
            groups = tasks.duplicate_groups(images, identified.files, pairs, options)
            errors = lib.file_errors(identified, outcome)
            counts = lib.summarise_counts(identified, outcome, errors, groups)
            lib.save_dedup_results(con, run_id, roots, options, images, pairs, groups, errors, counts)
            store.finish_run(con, run_id, status="completed", counts={**counts, "images_failed": len(errors)})
        except BaseException:
            store.finish_run(con, run_id, status="failed")
            raise
    finally:
        con.close()
    if errors:
        log.info("%d file(s) could not be used, e.g. %s", len(errors), errors[0].error)
    report = lib.build_report(groups, errors)
    outputs = lib.write_outputs(report, groups, json_path=json_path, csv_path=csv_path, html_path=html_path)
    return {"run_id": run_id, "report": report, "counts": counts, "skipped": identified.skipped,
            "model_id": model_id, "options": options.as_dict(), "outputs": outputs}
