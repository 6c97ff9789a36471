"""The study as plain functions: pairs -> features (decode once: pHash + embedding) -> scores -> sweeps.

    pair generation -> features, batch by batch -> scores -> evaluation -> runs, scores, metrics,
      (a step)         (content cache in DuckDB)              (a step)      method_summary rows

:func:`run_study` runs it from Python, without Prefect: feature batches on a thread pool, pair generation
and the sweeps as plain calls. :class:`StudySteps` is how an orchestrator plugs in: ``maya.flows.evaluate``
hands it its Prefect tasks (feature batches on the flow's task runner, threads or Dask; pair generation and
the sweeps through Prefect's task cache). The rows written are the same either way.

Two caches:

* **content**: a hash or embedding is computed once per (sha256, algorithm or model id). Each feature
  batch is written in one transaction by this process, so a run killed at any point is resumed by
  running it again: finished batches are not recomputed.
* **steps**: a cached ``generate_pairs`` / ``evaluate_scores`` step answers "cached"; the study then
  checks that a cached PairSet's files still exist and asks again with ``refresh=True`` if not.

Workers return small results (:class:`maya.features.FeatureBatch`); only this process writes DuckDB.
A fully cached rerun does not load the embedding model at all.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from maya.embedding.devices import gpu_may_be_present
from maya import features, store, view_features
from maya.errors import MayaUsageError
from maya.evaluation.metrics import METHOD_INPUTS, STUDY_METHODS, base_method, method_suffix
from maya.settings import load_settings
from maya.store import study as study_store

#: Folder (under the data folder) of cached step results: next to the derived images they refer to.
TASK_RESULTS = "task-results"

#: Feature batches in flight at once: with threads, one decodes while another is hashed and embedded.
IN_FLIGHT_THREADS = 2

_LOG = logging.getLogger("maya.study")


def task_results_dir(data_dir: str | Path) -> Path:
    """Where cached step results of runs on ``data_dir`` are stored (a Path: a str names a Prefect block)."""
    return Path(data_dir).resolve() / TASK_RESULTS


# ---------------------------------------------------------------------------------------------- steps


def build_pairs_step(source: str, images_dir: str, seed: int, options: dict, *, results: Path,
                     refresh: bool = False):
    """(PairSet, "computed"): pairs built from the originals in ``source`` (no cache)."""
    from maya.pairs import build

    return build.build_pairs(source, images_dir, seed=seed, progress=True, **options), "computed"


def evaluate_scores_step(phash_distance, similarity, label, split, methods, *, results: Path,
                         refresh: bool = False):
    """((metric columns, MethodResults, method_summary columns), "computed"): the sweeps (no cache)."""
    from maya.evaluation.selection import evaluate_scores

    return evaluate_scores(phash_distance, similarity, label, split, methods), "computed"


@dataclass
class StudySteps:
    """How the study's steps run. The defaults need nothing but this package.

    submit_features: ``(items, want_hash, model, max_pixels) -> future`` (anything with ``.result()``
        giving a :class:`maya.features.FeatureBatch`); None: :func:`maya.features.compute_batch` on a
        pool of ``in_flight`` threads.
    in_flight: feature batches submitted before the oldest is committed (memory is bounded by it).
    generate_pairs: ``(source, images_dir, seed, options, *, results, refresh) -> (PairSet, how)``
        with how "cached" or "computed".
    evaluate_scores: ``(phash_distance, similarity, label, split, methods, *, results, refresh) ->
        ((metrics, results, summary), how)``.
    task_runner: the name recorded in the run's parameters and the summary.
    """

    submit_features: Callable | None = None
    in_flight: int = IN_FLIGHT_THREADS
    generate_pairs: Callable = build_pairs_step
    evaluate_scores: Callable = evaluate_scores_step
    task_runner: str = "threads"


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


def _generate_pairs(step: Callable, source: str, images_dir: Path, seed: int, options: dict, *, results: Path,
                    refresh: bool, log):
    """(PairSet, how) from ``step``; a cached PairSet whose files are gone is built again (refreshed)."""
    pairset, how = step(source, str(images_dir), seed, options, results=results, refresh=refresh)
    if how != "cached":
        return pairset, "computed"
    gone = [f.path for f in pairset.files if f.status == "ok" and not Path(f.path).exists()]
    if not gone:
        return pairset, "cached"
    log.warning("%d image(s) of the cached pairs are gone (e.g. %s): building them again", len(gone), gone[0])
    pairset, _ = step(source, str(images_dir), seed, options, results=results, refresh=True)
    return pairset, "computed"


def ensure_pairs(con, dataset: str, source: str | None, seed: int, options: dict, images_dir: Path,
                 replace: bool = False, *, refresh: bool = False, results: Path | None = None,
                 generate: Callable = build_pairs_step, log=_LOG) -> dict:
    """The pairs of ``dataset``: stored ones, or built from ``source`` (same seed -> same pairs).

    Returns the dataset's info plus ``errors`` (problems met while building) and ``pairs_from``:
    "stored" (no source given), "cached" (the ``generate`` step answered from its cache), "computed".
    If the folder's content changed since the dataset was stored, the pairs differ and the run stops
    unless ``replace``.
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
    pairset, how = _generate_pairs(generate, source, images_dir, seed, options, results=results, refresh=refresh,
                                   log=log)
    if same_params and _same_pairs(store.read_pairs(con, dataset), pairset.pairs):
        return {**info, "errors": pairset.errors, "pairs_from": how}
    if info is not None and not replace:
        raise PairsError(
            f"dataset {dataset!r} was built from {source} with these parameters, but the folder's content has "
            f"changed since (the pairs differ); pass --replace to rebuild it, or choose another --dataset")
    study_store.save_pairset(con, dataset, origin="build", source=source, seed=seed, params=params,
                             pairset=pairset, replace=info is not None)
    return {**store.dataset_info(con, dataset), "errors": pairset.errors, "pairs_from": how}


# ---------------------------------------------------------------------------------------------- model


def predicted_model_id(spec: features.ModelSpec) -> str | None:
    """The model id ``load_embedder`` would give ``spec``, without loading the model; None if unsure.

    Lets a rerun whose embeddings are all stored skip importing transformers and loading the weights.
    Checked against the loaded model's id by tests/test_caching.py.
    """
    from maya.embedding import models as embedders

    _, precision = _device_and_precision(spec)
    return embedders.model_id_for(spec.name, precision)


def _device_and_precision(spec: features.ModelSpec) -> tuple[str, str]:
    """(device, resolved precision) as maya.embedding.devices picks them; without importing torch where it can."""
    requested = (spec.precision or "auto").strip().lower()
    on_cpu = spec.device == "cpu" or (spec.device in (None, "", "auto") and not gpu_may_be_present())
    if on_cpu and requested in ("auto", "fp32"):
        return "cpu", "fp32"
    from maya.embedding.devices import pick_device, resolve_precision

    device = pick_device(spec.device)
    return str(device), resolve_precision(spec.precision or "auto", device)


def _failed_for_good(failed: dict[str, str]) -> set[str]:
    return {s for s, err in failed.items() if (err or "").split(":", 1)[0] in features.PERMANENT_IMAGE_ERRORS}


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


# ---------------------------------------------------------------------------------------------- features


def _progress(total: int):
    from maya.progress import Progress

    return Progress(total, "features")  # a bar on a terminal, else a line every second or so


# ---------------------------------------------------------------------------------------------- scores


def score_pairs(con, pairs: dict, model_id: str | None, extra_views: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """pHash distance (N,) int64 and embedding similarity (N,) float64 per pair (-1 / NaN where an image failed);
    the dihedral distance (N,) int64 (-1 where a variant is missing) and the variant (N,) object that gave it;
    the best pair of views' distance and similarity (the inner views and the fixed ``extra_views``)."""
    from maya.hashing import DEFAULT, dihedral, hamming
    from maya.store import variants as variant_store

    shas = sorted(set(pairs["a"]) | set(pairs["b"]))
    hashes = store.load_hashes(con, shas, DEFAULT.name)
    embs = store.load_embeddings(con, shas, model_id) if model_id else {}
    has_h = np.array([a in hashes and b in hashes for a, b in zip(pairs["a"], pairs["b"])], dtype=bool)
    ha = np.array([hashes.get(a, 0) for a in pairs["a"]], dtype=np.uint64)
    hb = np.array([hashes.get(b, 0) for b in pairs["b"]], dtype=np.uint64)
    d = np.where(has_h, hamming(ha, hb), -1).astype(np.int64)
    sim = np.full(len(d), np.nan)
    for k, (a, b) in enumerate(zip(pairs["a"], pairs["b"])):
        if a in embs and b in embs:
            sim[k] = float(np.dot(embs[a], embs[b]))
    variants = variant_store.load_variants(con, shas, dihedral.ALGORITHM)
    has_v = np.array([a in variants and b in variants for a, b in zip(pairs["a"], pairs["b"])], dtype=bool)
    none = np.zeros(dihedral.N_VARIANTS, dtype=np.uint64)
    va = np.array([variants.get(a, none) for a in pairs["a"]], dtype=np.uint64).reshape(-1, dihedral.N_VARIANTS)
    vb = np.array([variants.get(b, none) for b in pairs["b"]], dtype=np.uint64).reshape(-1, dihedral.N_VARIANTS)
    dd, kk = dihedral.distance(va, vb)
    names = np.array(dihedral.VARIANTS, dtype=object)
    dd = np.where(has_v, dd, -1).astype(np.int64)
    from maya import view_features
    wd, ws = view_features.best_pair_scores(con, pairs["a"], pairs["b"], np.where(has_v, dd, d), sim, hashes, embs,
                                            model_id, extra_views)
    return {"pair_id": np.asarray(pairs["pair_id"], dtype=np.int64), "phash_distance": d, "clip_similarity": sim,
            "dihedral_distance": dd,
            "dihedral_variant": np.where(has_v, names[kk] if len(kk) else names[:0], None),
            "views_distance": wd, "views_similarity": ws}


def evaluate_all(evaluate: Callable, scores: dict, label, split, methods: list[str], *, results: Path,
                 refresh: bool):
    """The evaluation step for plain, dihedral and views methods: ``evaluate`` (a study step, e.g.
    :func:`evaluate_scores_step`) once per kind of scores (:data:`~maya.evaluation.metrics.METHOD_INPUTS`),
    on the ``*-dihedral`` and ``*-views`` methods as their base method, whose rows are then renamed. Returns
    ((metric columns, MethodResults, summary columns), how: "cached" only if every call was)."""
    from maya.evaluation.selection import MethodResult

    parts, hows = [], []
    for suffix, (distance, similarity) in METHOD_INPUTS.items():
        names = [m for m in methods if method_suffix(m) == suffix]
        if not names:
            continue
        base = [base_method(m) for m in names]
        (cols, res, summary), how = evaluate(scores[distance], scores[similarity], label, split, base,
                                             results=results, refresh=refresh)
        rename = dict(zip(base, names))
        cols = {**cols, "method": np.array([rename[m] for m in cols["method"]], dtype=object)}
        summary = {**summary, "method": np.array([rename[m] for m in summary["method"]], dtype=object)}
        res = [MethodResult(**{**r.__dict__, "method": rename[r.method]}) for r in res]
        parts.append((cols, res, summary))
        hows.append(how)
    cols = {k: _concat([p[0][k] for p in parts]) for k in parts[0][0]}
    summary = {k: _concat([p[2][k] for p in parts]) for k in parts[0][2]}
    results_all = [r for p in parts for r in p[1]]
    return (cols, results_all, summary), ("cached" if all(h == "cached" for h in hows) else "computed")


def _concat(arrays):
    if any(isinstance(a, np.ma.MaskedArray) for a in arrays):
        return np.ma.concatenate(arrays)
    return np.concatenate(arrays)


# ---------------------------------------------------------------------------------------------- the study


class _Clock:
    """Wall seconds per phase of the study (the summary's ``timings``; an orchestrator's start-up is not in it)."""

    def __init__(self):
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def run_study(
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
    extra_views: Sequence[str] | None = None,
    *,
    steps: StudySteps | None = None,
    flow_run_id: str | None = None,
    log=None,
) -> dict:
    """Score every pair of ``dataset`` with pHash and the embedding model and evaluate all methods.

    Writes one ``runs`` row (flow 'evaluate'), its ``scores``, ``metrics`` and ``method_summary`` rows.
    Parameters are those of ``maya evaluate`` (see ``maya.flows.evaluate.evaluate``; None: settings, i.e.
    env ``MAYA_*`` or defaults); ``steps`` says how batches and cached steps run (default: threads, no
    step cache); ``flow_run_id`` is recorded on the run; ``log`` a logger (default ``maya.study``).
    ``extra_views``: fixed extra views (``maya.views.EXTRA_VIEWS``, e.g. ``["centre"]``; dedup's ``--extra-views``)
    computed and compared too by the ``*-views`` methods, so that the study and dedup see the same views.

    Returns a summary dict: run_id, dataset, model, pairs, images, counts (hashes/embeddings computed and
    reused, images failed, batches, worker_pids), errors, results (per method), cache (what each cached
    step did: "cached" | "computed" | "stored"; whether the model was loaded), task_runner, timings
    (seconds per phase).
    """
    steps = steps or StudySteps()
    log = log or _LOG
    from maya.views import EXTRA_VIEWS

    if isinstance(extra_views, (str, bytes)) or any(v not in EXTRA_VIEWS for v in (extra_views or ())):
        raise MayaUsageError(f"unknown extra views {extra_views!r}: use any of {', '.join(EXTRA_VIEWS)}")
    extra_views = list(dict.fromkeys(extra_views or ()))
    clock = _Clock()
    settings = load_settings(data_dir=data_dir, model=model, device=device, precision=precision,
                             batch_size=batch_size)
    methods = list(methods or STUDY_METHODS)
    results_dir = task_results_dir(settings.data_dir)
    spec = features.ModelSpec(settings.model, settings.device, settings.precision, settings.batch_size)
    con = store.connect(settings.db_path)
    try:
        info = ensure_pairs(con, dataset, source, seed, dict(pair_options or {}), settings.images_dir, replace,
                            refresh=refresh, results=results_dir, generate=steps.generate_pairs, log=log)
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
                                             "refresh": refresh, "task_runner": steps.task_runner,
                                             "extra_views": extra_views},
                                 flow_run_id=flow_run_id or "")
        try:
            with ExitStack() as stack:
                submit = steps.submit_features
                if submit is None:  # the default runner: a pool of in_flight threads in this process
                    pool = stack.enter_context(ThreadPoolExecutor(max(1, steps.in_flight), "maya-features"))
                    submit = partial(pool.submit, features.compute_batch)
                outcome = features.compute_missing(
                    con, shas, model=spec if embedder is not None else None, model_id=model_id, batch_size=batch,
                    max_pixels=settings.max_pixels, submit=submit, in_flight=steps.in_flight,
                    policy=features.STUDY_POLICY, retry_failed=refresh, progress=_progress,
                    log=log, views=True)  # the views' boxes found on this decode (maya.view_features)
                counts = outcome.counts_of(features.STUDY_COUNTS)
            clock.lap("features")
            view_counts = view_features.compute_views(con, shas, model=spec, model_id=model_id, batch_size=batch,
                                                      max_pixels=settings.max_pixels, boxes=outcome.view_boxes)
            for name in extra_views:  # the fixed extra views, as dedup's --extra-views computes them
                extra = view_features.compute_extra_views(con, shas, name, model=spec, model_id=model_id,
                                                          batch_size=batch, max_pixels=settings.max_pixels)
                view_counts = {k: view_counts[k] + extra[k] for k in extra}
            clock.lap("views")
            scores = score_pairs(con, pairs, model_id, extra_views)
            clock.lap("scores")
            (metric_cols, results, summary_cols), evaluation_from = evaluate_all(
                steps.evaluate_scores, scores, pairs["label"], pairs["split"], methods, results=results_dir,
                refresh=refresh)
            clock.lap("evaluation")
            hybrid = next((r for r in results if r.method == "hybrid"), None)
            if hybrid is not None:
                scores["clip_needed"] = scores["phash_distance"] <= hybrid.thresholds["phash_threshold"]
            scores["clip_computed"] = ~np.isnan(scores["clip_similarity"])
            # the schema's NULL for "unknown distance" (an image of the pair failed); -1 inside the sweeps
            scores["phash_distance"] = np.ma.masked_less(scores["phash_distance"], 0)
            scores["dihedral_distance"] = np.ma.masked_less(scores["dihedral_distance"], 0)
            scores["views_distance"] = np.ma.masked_less(scores["views_distance"], 0)
            study_store.save_scores_and_metrics(con, run_id, dataset, scores, metric_cols,
                                                method_summary=summary_cols)
            store.finish_run(con, run_id, status="completed", counts=counts)
            view_features.record_cost(con, run_id, view_counts)
            clock.lap("write")
        except BaseException:
            store.finish_run(con, run_id, status="failed")
            raise
        cache = {"pairs": info["pairs_from"], "features": "computed" if counts["hashes_computed"]
                 or counts["embeddings_computed"] else "stored",
                 "evaluation": evaluation_from, "model_loaded": embedder is not None}
        log.info("run %d: pairs %s, evaluation %s; %d hashes and %d embeddings computed", run_id, cache["pairs"],
                 cache["evaluation"], counts["hashes_computed"], counts["embeddings_computed"])
        return {
            "run_id": run_id, "dataset": dataset, "model": model_id, "pairs": int(len(pairs["pair_id"])),
            "images": len(shas), "counts": counts, "views": view_counts, "errors": info.get("errors", []),
            "results": [r.__dict__ for r in results], "cache": cache, "task_runner": steps.task_runner,
            "timings": clock.laps,
        }
    finally:
        con.close()
