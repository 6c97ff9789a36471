"""The study: pairs -> preprocessing -> pHash -> embeddings -> scores -> evaluation, all in DuckDB.

    pair generation -> preprocessing -> pHash -> CLIP scoring -> evaluation
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger

from maya import features, store
from maya.metrics import METHODS
from maya.settings import load_settings
from tasks import evaluate as evaluate_tasks
from tasks import features as feature_tasks
from tasks import pairs as pair_tasks

PAIR_OPTIONS = ("positives_per_original", "chains_per_original", "negatives_per_positive",
                "hard_negative_fraction", "val_fraction")


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", mininterval=1.0, leave=False, disable=None if total else True)


def ensure_pairs(con, dataset: str, source: str | None, seed: int, options: dict, images_dir: Path,
                 replace: bool = False) -> dict:
    """Build (or reuse, when identical) the pairs of ``dataset`` from ``source``; the flow writes them."""
    from maya.pairs import PairsError

    info = store.dataset_info(con, dataset)
    params = {"kind": "build", **options}
    if source is None:
        if info is None:
            raise PairsError(f"unknown dataset {dataset!r}: build it with `maya pairs build SRC --dataset {dataset}`")
        return info
    source = str(Path(source).resolve())
    if info is not None and not replace:
        same = info["source"] == source and info["seed"] == seed and info["params"] == params
        derived_ok = all(Path(p).exists() for p in store.image_paths(
            con, con.execute("SELECT b FROM pairs WHERE dataset = ?", [dataset]).fetchnumpy()["b"]).values())
        if same and derived_ok:
            return info
        if not same:
            raise PairsError(
                f"dataset {dataset!r} exists with other parameters (source {info['source']}, seed {info['seed']}); "
                f"choose another --dataset or pass --replace")
        replace = True  # same parameters, but derived images are gone: rebuild them
    pairset = pair_tasks.generate_pairs(source, str(images_dir), seed, options)
    store.save_pairset(con, dataset, origin="build", source=source, seed=seed, params=params,
                       pairset=pairset, replace=replace)
    info = store.dataset_info(con, dataset)
    info["errors"] = pairset.errors
    return info


def compute_features(con, shas: list[str], model: features.ModelSpec | None, model_id: str | None,
                     batch_size: int, max_pixels: int | None, log) -> dict:
    """Hash and embed whatever ``shas`` lack, a batch at a time, each batch in one transaction.

    Preprocessing of the next batch runs while the current one is hashed and embedded (two in flight),
    so memory is bounded by two batches whatever the dataset size.
    """
    from maya.phash import ALGORITHM

    have_h = store.load_hashes(con, shas, ALGORITHM)
    have_e = store.load_embeddings(con, shas, model_id).keys() if model_id else set()
    known_bad = store.failed_images(con, shas)
    todo = [s for s in shas if (s not in have_h or (model_id and s not in have_e))]
    paths = store.image_paths(con, todo)
    counts = {"hashes_computed": 0, "embeddings_computed": 0, "images_failed": 0,
              "hashes_reused": len(set(shas) & set(have_h)),
              "embeddings_reused": len(set(shas) & set(have_e))}
    missing_path = [s for s in todo if s not in paths]
    if missing_path:
        counts["images_failed"] += len(missing_path)
    items = [(s, paths[s]) for s in todo if s in paths]
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    pending: deque = deque()
    bar = _progress(len(items), "features")
    for batch in batches:
        need_h = any(s not in have_h for s, _ in batch)
        need_e = model is not None and any(s not in have_e for s, _ in batch)
        pending.append((batch, feature_tasks.preprocess.submit(batch, need_h, model if need_e else None, max_pixels)))
        if len(pending) >= 2:
            _finish_batch(con, *pending.popleft(), have_h, have_e, model, model_id, counts, bar)
    while pending:
        _finish_batch(con, *pending.popleft(), have_h, have_e, model, model_id, counts, bar)
    bar.close()
    failed = store.failed_images(con, shas)
    counts["images_failed"] = len(failed) + len(missing_path)
    if failed:
        log.warning("%d image(s) could not be used, e.g. %s", len(failed), next(iter(failed.values())))
    del known_bad
    return counts


def _finish_batch(con, batch, prep_future, have_h, have_e, model, model_id, counts, bar) -> None:
    from maya.phash import ALGORITHM

    prepared = prep_future.result()
    h_shas, bits = feature_tasks.phash.submit(prepared).result() if prepared.gray32 is not None else ([], [])
    e_shas, vecs = (feature_tasks.embed.submit(prepared, model).result()
                    if prepared.model_input is not None else ([], None))
    # only what was missing counts as computed (a batch may mix cached and new images)
    new_h = [i for i, s in enumerate(h_shas) if s not in have_h]
    new_e = [i for i, s in enumerate(e_shas) if s not in have_e]
    store.save_features(
        con, prepared.records, ALGORITHM,
        ([h_shas[i] for i in new_h], np.asarray(bits, dtype=np.uint64)[new_h] if len(new_h) else []),
        model_id, ([e_shas[i] for i in new_e], vecs[new_e] if new_e else None),
    )
    counts["hashes_computed"] += len(new_h)
    counts["embeddings_computed"] += len(new_e)
    bar.update(len(batch))


def score_pairs(con, pairs: dict, model_id: str | None) -> dict[str, np.ndarray]:
    """pHash distance and embedding similarity per pair (-1 / NaN where an image failed)."""
    from maya.phash import ALGORITHM, hamming

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
) -> dict:
    """Score every pair of ``dataset`` with pHash and the embedding model and evaluate all methods.

    With ``source``, the dataset's pairs are generated from that folder first (same seed -> same pairs).
    Returns a summary dict (run id, counts, per-method results) and writes everything to DuckDB.
    """
    log = get_run_logger()
    settings = load_settings(data_dir=data_dir, model=model, device=device, precision=precision,
                             batch_size=batch_size)
    methods = list(methods or METHODS)
    con = store.connect(settings.db_path)
    try:
        info = ensure_pairs(con, dataset, source, seed, dict(pair_options or {}), settings.images_dir, replace)
        spec = features.ModelSpec(settings.model, settings.device, settings.precision, settings.batch_size)
        embedder = features.get_embedder(spec)  # fail fast, before any work
        batch = settings.batch_size or embedder.batch_size
        from prefect.runtime import flow_run

        run_id = store.start_run(con, flow="evaluate", dataset=dataset, model=embedder.model_id,
                                 parameters={"dataset": dataset, "seed": seed, "model": settings.model,
                                             "device": str(embedder.device), "precision": embedder.precision,
                                             "batch_size": batch, "methods": methods, "source": source},
                                 flow_run_id=str(flow_run.get_id() or ""))
        try:
            pairs = store.read_pairs(con, dataset)
            shas = sorted(set(pairs["a"]) | set(pairs["b"]))
            counts = compute_features(con, shas, spec, embedder.model_id, batch, settings.max_pixels, log)
            scores = score_pairs(con, pairs, embedder.model_id)
            metric_cols, results = evaluate_tasks.evaluate_scores(
                scores["phash_distance"], scores["clip_similarity"], pairs["label"], pairs["split"], methods)
            hybrid = next((r for r in results if r.method == "hybrid"), None)
            if hybrid is not None:
                scores["clip_needed"] = scores["phash_distance"] <= hybrid.thresholds["phash_threshold"]
            scores["clip_computed"] = ~np.isnan(scores["clip_similarity"])
            store.save_scores_and_metrics(con, run_id, dataset, scores, metric_cols)
            store.finish_run(con, run_id, status="completed", counts=counts)
        except BaseException:
            store.finish_run(con, run_id, status="failed")
            raise
        return {
            "run_id": run_id, "dataset": dataset, "model": embedder.model_id, "pairs": int(len(pairs["pair_id"])),
            "images": len(shas), "counts": counts, "errors": info.get("errors", []),
            "results": [r.__dict__ for r in results],
        }
    finally:
        con.close()
