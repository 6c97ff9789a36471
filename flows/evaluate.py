"""The study: pairs -> preprocessing -> pHash -> embeddings -> scores -> evaluation, all in DuckDB.

    pair generation -> features (decode once: pHash + embedding) -> scores -> evaluation
      (task cache)       (content cache in DuckDB, batch by batch)             (task cache)

Two caches, both visible in the summary:

* **content**: a hash or embedding is computed once per (sha256, algorithm or model id). Each feature
  batch is written in one transaction by this process, so a run killed at any point is resumed by
  running it again: finished batches are not recomputed.
* **task**: pair generation and the evaluation sweeps are Prefect tasks cached by content (task
  identity, source of the code that does the work, inputs, fingerprint of the source folder), with
  their results stored in ``<data_dir>/task-results``. ``refresh=True`` recomputes them.

Compute tasks run on threads, or on a Dask cluster (``dask_address``); workers return small results and
only this process writes DuckDB. A fully cached rerun does not load the embedding model at all.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger

from maya.flows.runners import dask_in_flight, run_on_cluster
from maya import features, store
from maya.evaluation.metrics import METHODS
from maya.settings import load_settings
from maya.tasks import evaluate as evaluate_tasks
from maya.tasks import features as feature_tasks
from maya.tasks import pairs as pair_tasks

PAIR_OPTIONS = ("positives_per_original", "chains_per_original", "negatives_per_positive",
                "hard_negative_fraction", "val_fraction")

#: Folder (under the data folder) of the task cache's results: next to the derived images they refer to.
TASK_RESULTS = "task-results"

#: Image errors that depend only on the file's bytes (its identity): retrying cannot help, so a rerun
#: leaves these images out (``refresh`` tries them again). Other reasons (missing, unreadable, too_large,
#: unsupported, a changed file) depend on the path, a setting or the installation, and are retried.
PERMANENT_IMAGE_ERRORS = ("not_an_image", "truncated", "corrupt", "empty")

#: Feature batches in flight at once: with threads, one decodes while another is hashed and embedded.
IN_FLIGHT_THREADS = 2


def task_results_dir(data_dir: str | Path) -> Path:
    """Where cached task results of runs on ``data_dir`` are stored (a Path: a str names a block)."""
    return Path(data_dir).resolve() / TASK_RESULTS


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", mininterval=1.0, leave=False, disable=None if total else True)


# ---------------------------------------------------------------------------------------------- pairs


def _same_pairs(stored: dict, pairs: list) -> bool:
    if len(stored["pair_id"]) != len(pairs):
        return False
    ordered = sorted(pairs, key=lambda p: p.pair_id)
    return (list(stored["pair_id"]) == [p.pair_id for p in ordered]
            and list(stored["a"]) == [p.a for p in ordered] and list(stored["b"]) == [p.b for p in ordered]
            and [bool(x) for x in stored["label"]] == [bool(p.label) for p in ordered]
            and list(stored["kind"]) == [p.kind for p in ordered]
            and list(stored["split"]) == [p.split for p in ordered])


def generate_pairs_cached(source: str, images_dir: Path, seed: int, options: dict, *, results: Path,
                          refresh: bool = False):
    """(PairSet, "cached" | "computed"): the pair generation task through its cache.

    A cached PairSet whose files (derived images under ``images_dir``, originals) are gone is not
    trusted: the task runs again with a refreshed cache.
    """
    log = get_run_logger()
    task = pair_tasks.generate_pairs.with_options(result_storage=results, refresh_cache=refresh or None)
    state = task(source, str(images_dir), seed, options, return_state=True)
    pairset = state.result()
    if not state.is_completed() or state.name != "Cached":
        return pairset, "computed"
    gone = [f.path for f in pairset.files if f.status == "ok" and not Path(f.path).exists()]
    if not gone:
        return pairset, "cached"
    log.warning("%d image(s) of the cached pairs are gone (e.g. %s): building them again", len(gone), gone[0])
    task = pair_tasks.generate_pairs.with_options(result_storage=results, refresh_cache=True)
    return task(source, str(images_dir), seed, options), "computed"


def ensure_pairs(con, dataset: str, source: str | None, seed: int, options: dict, images_dir: Path,
                 replace: bool = False, *, refresh: bool = False, results: Path | None = None) -> dict:
    """The pairs of ``dataset``: stored ones, or built from ``source`` (same seed -> same pairs).

    Returns the dataset's info plus ``errors`` (problems met while building) and ``pairs_from``:
    "stored" (no source given), "cached" (task cache hit), "computed" (pairs generated by this run).
    With ``source``, the task cache answers an unchanged rerun; if the folder's content changed since the
    dataset was stored, the pairs differ and the run stops unless ``replace``.
    """
    from maya.pairs.build import PairsError

    info = store.dataset_info(con, dataset)
    if source is None:
        if info is None:
            raise PairsError(f"unknown dataset {dataset!r}: build it with `maya pairs build SRC --dataset {dataset}`")
        return {**info, "errors": [], "pairs_from": "stored"}
    source = str(Path(source).resolve())
    params = {"kind": "build", **options}
    same_params = info is not None and (info["source"], info["seed"], info["params"]) == (source, seed, params)
    if info is not None and not replace and not same_params:
        raise PairsError(
            f"dataset {dataset!r} exists with other parameters (source {info['source']}, seed {info['seed']}); "
            f"choose another --dataset or pass --replace")
    results = results or task_results_dir(images_dir.parent)
    pairset, how = generate_pairs_cached(source, images_dir, seed, options, results=results, refresh=refresh)
    if same_params and _same_pairs(store.read_pairs(con, dataset), pairset.pairs):
        return {**info, "errors": pairset.errors, "pairs_from": how}
    if info is not None and not replace:
        raise PairsError(
            f"dataset {dataset!r} was built from {source} with these parameters, but the folder's content has "
            f"changed since (the pairs differ); pass --replace to rebuild it, or choose another --dataset")
    store.save_pairset(con, dataset, origin="build", source=source, seed=seed, params=params,
                       pairset=pairset, replace=info is not None)
    return {**store.dataset_info(con, dataset), "errors": pairset.errors, "pairs_from": how}


# ---------------------------------------------------------------------------------------------- features


def predicted_model_id(spec: features.ModelSpec) -> str | None:
    """The model id ``load_embedder`` would give ``spec``, without loading the model; None if unsure.

    Lets a rerun whose embeddings are all stored skip importing transformers and loading the weights.
    Checked against the loaded model's id by tests/test_caching.py.
    """
    from maya.embedding import models as embedders

    _, precision = _device_and_precision(spec)
    return embedders.model_id_for(spec.name, precision)


def _cpu_only_torch() -> bool:
    """True when the installed torch is a CPU-only build on Linux or Windows (``2.x.y+cpu``): then the
    best device is the CPU, known without importing torch (seconds)."""
    import importlib.metadata
    import platform

    if platform.system() == "Darwin":  # MPS builds carry no local version
        return False
    try:
        return importlib.metadata.version("torch").endswith("+cpu")
    except importlib.metadata.PackageNotFoundError:
        return False


def _device_and_precision(spec: features.ModelSpec) -> tuple[str, str]:
    """(device, resolved precision) as maya.embedding.devices picks them; without importing torch where it can."""
    requested = (spec.precision or "auto").strip().lower()
    if spec.device in (None, "", "auto", "cpu") and requested in ("auto", "fp32") and _cpu_only_torch():
        return "cpu", "fp32"
    from maya.embedding.devices import pick_device, resolve_precision

    device = pick_device(spec.device)
    return str(device), resolve_precision(spec.precision or "auto", device)


def _failed_for_good(failed: dict[str, str]) -> set[str]:
    return {s for s, err in failed.items() if (err or "").split(":", 1)[0] in PERMANENT_IMAGE_ERRORS}


def compute_features(con, shas: list[str], model: features.ModelSpec | None, model_id: str | None,
                     batch_size: int, max_pixels: int | None, log, *, in_flight: int = IN_FLIGHT_THREADS,
                     retry_failed: bool = False) -> dict:
    """Hash and embed whatever ``shas`` lack, a batch at a time, each batch committed in one transaction.

    ``in_flight`` batches run at once on the task runner (threads: one decodes while another embeds;
    Dask: one or two per worker); results come back in order, so memory is bounded by ``in_flight``
    batches whatever the dataset size. Images whose earlier failure depends only on their bytes
    (:data:`PERMANENT_IMAGE_ERRORS`) are not tried again unless ``retry_failed``.
    Returns counts: hashes/embeddings computed and reused, images failed, batches, worker processes.
    """
    from maya.hashing.phash import ALGORITHM

    have_h = store.load_hashes(con, shas, ALGORITHM)
    have_e = set(store.load_embeddings(con, shas, model_id).keys()) if model_id else set()
    skip = set() if retry_failed else _failed_for_good(store.failed_images(con, shas))
    todo = [s for s in shas if s not in skip and (s not in have_h or (model is not None and s not in have_e))]
    paths = store.image_paths(con, todo)
    counts = {"hashes_computed": 0, "embeddings_computed": 0, "images_failed": 0,
              "hashes_reused": len(set(shas) & set(have_h)),
              "embeddings_reused": len(set(shas) & have_e),
              "batches": 0, "worker_pids": set()}
    missing_path = [s for s in todo if s not in paths]
    items = [(s, paths[s]) for s in todo if s in paths]
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    pending: deque = deque()
    bar = _progress(len(items), "features")
    done = 0
    for batch in batches:
        need_h = any(s not in have_h for s, _ in batch)
        need_e = model is not None and any(s not in have_e for s, _ in batch)
        pending.append((batch, feature_tasks.image_features.submit(batch, need_h, model if need_e else None,
                                                                   max_pixels)))
        while len(pending) >= max(1, in_flight):
            done += _commit_batch(con, *pending.popleft(), have_h, have_e, model_id, counts, bar, log,
                                  len(batches), len(items), done)
    while pending:
        done += _commit_batch(con, *pending.popleft(), have_h, have_e, model_id, counts, bar, log,
                              len(batches), len(items), done)
    bar.close()
    failed = store.failed_images(con, shas)
    counts["images_failed"] = len(failed) + len(missing_path)
    if failed:
        log.warning("%d image(s) could not be used, e.g. %s", len(failed), next(iter(failed.values())))
    counts["worker_pids"] = sorted(counts["worker_pids"])
    return counts


def _commit_batch(con, batch, future, have_h, have_e, model_id, counts, bar, log, n_batches, n_items,
                  done_before) -> int:
    from maya.hashing.phash import ALGORITHM

    out: features.FeatureBatch = future.result()
    # only what was missing counts as computed (a batch may mix cached and new images)
    new_h = [i for i, s in enumerate(out.hash_shas) if s not in have_h]
    new_e = [i for i, s in enumerate(out.embed_shas) if s not in have_e]
    store.save_features(
        con, out.records, ALGORITHM,
        ([out.hash_shas[i] for i in new_h], out.hash_bits[new_h] if new_h else []),
        model_id, ([out.embed_shas[i] for i in new_e], out.vectors[new_e] if new_e else None),
    )
    have_h.update({out.hash_shas[i]: 0 for i in new_h})
    have_e.update(out.embed_shas[i] for i in new_e)
    counts["hashes_computed"] += len(new_h)
    counts["embeddings_computed"] += len(new_e)
    counts["batches"] += 1
    counts["worker_pids"].add(out.worker_pid)
    bar.update(len(batch))
    log.info("features: batch %d/%d committed (%d/%d images)", counts["batches"], n_batches,
             done_before + len(batch), n_items)
    return len(batch)


def score_pairs(con, pairs: dict, model_id: str | None) -> dict[str, np.ndarray]:
    """pHash distance and embedding similarity per pair (-1 / NaN where an image failed)."""
    from maya.hashing.phash import ALGORITHM, hamming

    shas = sorted(set(pairs["a"]) | set(pairs["b"]))
    hashes = store.load_hashes(con, shas, ALGORITHM)
    embs = store.load_embeddings(con, shas, model_id) if model_id else {}
    has_h = np.array([a in hashes and b in hashes for a, b in zip(pairs["a"], pairs["b"])], dtype=bool)
    ha = np.array([hashes.get(a, 0) for a in pairs["a"]], dtype=np.uint64)
    hb = np.array([hashes.get(b, 0) for b in pairs["b"]], dtype=np.uint64)
    d = np.where(has_h, hamming(ha, hb), -1).astype(np.int64)
    sim = np.full(len(d), np.nan)
    for k, (a, b) in enumerate(zip(pairs["a"], pairs["b"])):
        if a in embs and b in embs:
            sim[k] = float(np.dot(embs[a], embs[b]))
    return {"pair_id": np.asarray(pairs["pair_id"], dtype=np.int64), "phash_distance": d, "clip_similarity": sim}


# ---------------------------------------------------------------------------------------------- flow


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

    Returns a summary dict: run_id, dataset, model, pairs, images, counts (hashes/embeddings computed and
    reused, images failed, batches, worker_pids), errors, results (per method), cache (what each cached
    step did: "cached" | "computed" | "stored"; whether the model was loaded), task_runner, timings
    (seconds per phase of the flow body).
    """
    params = {k: v for k, v in locals().items() if k != "dask_address"}
    if dask_address:
        return run_on_cluster(evaluate_on_cluster, dask_address, task_runner=dask_address, **params)
    return _evaluate(task_runner="threads", **params)


@flow(name="evaluate-on-cluster", log_prints=True)
def evaluate_on_cluster(**params) -> dict:
    """The same steps as ``evaluate``, with the task runner this subflow was given (Dask)."""
    return _evaluate(**params)


def _evaluate(dataset, source, seed, model, data_dir, device, precision, batch_size, methods, pair_options,
              replace, refresh, task_runner) -> dict:
    from prefect.runtime import flow_run

    log = get_run_logger()
    clock = _Clock()
    settings = load_settings(data_dir=data_dir, model=model, device=device, precision=precision,
                             batch_size=batch_size)
    methods = list(methods or METHODS)
    results_dir = task_results_dir(settings.data_dir)
    spec = features.ModelSpec(settings.model, settings.device, settings.precision, settings.batch_size)
    con = store.connect(settings.db_path)
    try:
        info = ensure_pairs(con, dataset, source, seed, dict(pair_options or {}), settings.images_dir, replace,
                            refresh=refresh, results=results_dir)
        pairs = store.read_pairs(con, dataset)
        shas = sorted(set(pairs["a"]) | set(pairs["b"]))
        clock.lap("pairs")
        model_id, device_name, model_precision, embedder = _model_for(con, spec, shas, refresh)
        clock.lap("model")
        batch = settings.batch_size or (embedder.batch_size if embedder is not None else _default_batch(device_name))
        run_id = store.start_run(con, flow="evaluate", dataset=dataset, model=model_id,
                                 parameters={"dataset": dataset, "seed": seed, "model": settings.model,
                                             "device": device_name, "precision": model_precision,
                                             "batch_size": batch, "methods": methods, "source": source,
                                             "refresh": refresh, "task_runner": task_runner},
                                 flow_run_id=str(flow_run.get_id() or ""))
        try:
            in_flight = IN_FLIGHT_THREADS if task_runner == "threads" else dask_in_flight()
            counts = compute_features(con, shas, spec if embedder is not None else None, model_id, batch,
                                      settings.max_pixels, log, in_flight=in_flight, retry_failed=refresh)
            clock.lap("features")
            scores = score_pairs(con, pairs, model_id)
            clock.lap("scores")
            eval_task = evaluate_tasks.evaluate_scores.with_options(result_storage=results_dir,
                                                                    refresh_cache=refresh or None)
            state = eval_task(scores["phash_distance"], scores["clip_similarity"], pairs["label"], pairs["split"],
                              methods, return_state=True)
            metric_cols, results, summary_cols = state.result()
            clock.lap("evaluation")
            hybrid = next((r for r in results if r.method == "hybrid"), None)
            if hybrid is not None:
                scores["clip_needed"] = scores["phash_distance"] <= hybrid.thresholds["phash_threshold"]
            scores["clip_computed"] = ~np.isnan(scores["clip_similarity"])
            # the schema's NULL for "unknown distance" (an image of the pair failed); -1 inside the sweeps
            scores["phash_distance"] = np.ma.masked_less(scores["phash_distance"], 0)
            store.save_scores_and_metrics(con, run_id, dataset, scores, metric_cols,
                                          method_summary=summary_cols)
            store.finish_run(con, run_id, status="completed", counts=counts)
            clock.lap("write")
        except BaseException:
            store.finish_run(con, run_id, status="failed")
            raise
        cache = {"pairs": info["pairs_from"], "features": "computed" if counts["hashes_computed"]
                 or counts["embeddings_computed"] else "stored",
                 "evaluation": "cached" if state.name == "Cached" else "computed",
                 "model_loaded": embedder is not None}
        log.info("run %d: pairs %s, evaluation %s; %d hashes and %d embeddings computed", run_id, cache["pairs"],
                 cache["evaluation"], counts["hashes_computed"], counts["embeddings_computed"])
        return {
            "run_id": run_id, "dataset": dataset, "model": model_id, "pairs": int(len(pairs["pair_id"])),
            "images": len(shas), "counts": counts, "errors": info.get("errors", []),
            "results": [r.__dict__ for r in results], "cache": cache, "task_runner": task_runner,
            "timings": clock.laps,
        }
    finally:
        con.close()


class _Clock:
    """Wall seconds per phase of the flow body (the summary's ``timings``; Prefect's start-up is not in it)."""

    def __init__(self):
        import time

        self._now = time.perf_counter
        self._last = self._now()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = self._now()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def _model_for(con, spec: features.ModelSpec, shas: list[str], refresh: bool):
    """(model id, device, precision, embedder or None): the embedder is loaded only when embeddings are missing.

    Fails fast (before any feature work) when the model cannot be had.
    """
    try:
        predicted = predicted_model_id(spec)
    except Exception:  # noqa: BLE001 - a bad name or device is reported by the real load below
        predicted = None
    if predicted is not None:
        have = store.load_embeddings(con, shas, predicted).keys()
        skip = set() if refresh else _failed_for_good(store.failed_images(con, shas))
        if all(s in have or s in skip for s in shas):
            return (predicted, *_device_and_precision(spec), None)
    embedder = features.get_embedder(spec)
    return embedder.model_id, str(embedder.device), embedder.precision, embedder


def _default_batch(device: str) -> int:
    from maya.embedding.models import default_batch_size

    return default_batch_size(device)
