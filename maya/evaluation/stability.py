"""How much the test F1 moves when the pairs are regenerated: mean, std and a bootstrap interval over K runs.

Each repeat builds the pairs with another seed (other edits, other negatives, another val/test split of
the originals), chooses thresholds on its own 'val' and reports its own 'test'. The spread of those K
test F1 values is the honest error bar of one run's headline number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Bootstrap resamples (percentile interval). 10 000 keeps the Monte-Carlo error of a 95 % bound small.
N_BOOTSTRAP = 10_000


@dataclass(frozen=True)
class Spread:
    """Summary of K values of one measure."""

    repeats: int
    mean: float
    std: float  # sample standard deviation (ddof=1); NaN when repeats < 2
    ci_low: float  # percentile-bootstrap interval of the mean
    ci_high: float


def bootstrap_interval(values, *, confidence: float = 0.95, n_boot: int = N_BOOTSTRAP,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (K,) floats.

    Draws ``n_boot`` resamples of size K with replacement (numpy ``default_rng(seed)``: same input, same
    seed, same interval) and returns the (1-c)/2 and (1+c)/2 quantiles of their means (numpy's default
    linear interpolation). With K = 1 the interval is the one value. With few repeats (K = 3) the interval
    can only take values among the resample means of those K numbers: read it as rough.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if len(x) == 0:
        raise ValueError("bootstrap of no values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if np.isnan(x).any():
        raise ValueError("bootstrap of NaN values")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    means = x[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def spread(values, *, confidence: float = 0.95, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> Spread:
    """Mean, sample std (ddof=1) and bootstrap interval (see :func:`bootstrap_interval`) of ``values``."""
    x = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = bootstrap_interval(x, confidence=confidence, n_boot=n_boot, seed=seed)
    std = float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")
    return Spread(repeats=len(x), mean=float(np.mean(x)), std=std, ci_low=lo, ci_high=hi)


def stability_rows(runs: list[list], *, confidence: float = 0.95, n_boot: int = N_BOOTSTRAP,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Stability rows for the ``metrics`` table (without run_id), one per method, from K runs' results.

    Args:
        runs: per run, its results: ``maya.evaluation.selection.MethodResult`` objects or their ``__dict__``
            (what :func:`maya.evaluation.study.run_study` returns under "results"). A method missing from some run
            is summarised over the runs that have it.
    Returns:
        Columns split ('stability'), method, repeats, f1 (mean test F1), f1_std, f1_ci_low, f1_ci_high,
        precision, recall, clip_fraction (means over the runs), selected (false). Methods keep the order
        in which they first appear. The bootstrap of each method uses ``seed``.
    """
    by_method: dict[str, list[dict]] = {}
    for results in runs:
        for r in results:
            r = r if isinstance(r, dict) else r.__dict__
            by_method.setdefault(r["method"], []).append(r)
    cols: dict[str, list] = {k: [] for k in ("split", "method", "repeats", "f1", "f1_std", "f1_ci_low",
                                             "f1_ci_high", "precision", "recall", "clip_fraction", "selected")}
    for method, rs in by_method.items():
        sp = spread([r["test_f1"] for r in rs], confidence=confidence, n_boot=n_boot, seed=seed)
        cols["split"].append("stability")
        cols["method"].append(method)
        cols["repeats"].append(sp.repeats)
        cols["f1"].append(sp.mean)
        cols["f1_std"].append(sp.std)
        cols["f1_ci_low"].append(sp.ci_low)
        cols["f1_ci_high"].append(sp.ci_high)
        cols["precision"].append(float(np.mean([r["test_precision"] for r in rs])))
        cols["recall"].append(float(np.mean([r["test_recall"] for r in rs])))
        cols["clip_fraction"].append(float(np.mean([r["test_clip_fraction"] for r in rs])))
        cols["selected"].append(False)
    out = {k: np.array(v, dtype=object) for k, v in cols.items() if k in ("split", "method")}
    out["repeats"] = np.array(cols["repeats"], dtype=np.int64)
    for k in ("f1", "f1_std", "f1_ci_low", "f1_ci_high", "precision", "recall", "clip_fraction"):
        out[k] = np.array(cols[k], dtype=np.float64)
    out["selected"] = np.array(cols["selected"], dtype=bool)
    return out


def stability_table(rows: dict[str, np.ndarray]) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of :func:`stability_rows` for a printed table: method, repeats,
    'mean ± std' of test F1, the interval, and mean precision / recall."""
    columns = ["method", "repeats", "test_f1 mean ± std", "95% bootstrap CI", "precision", "recall"]
    out = []
    for i, m in enumerate(rows["method"]):
        std = rows["f1_std"][i]
        out.append((
            str(m), int(rows["repeats"][i]),
            f"{rows['f1'][i]:.4f} ± {std:.4f}" if np.isfinite(std) else f"{rows['f1'][i]:.4f}",
            f"[{rows['f1_ci_low'][i]:.4f}, {rows['f1_ci_high'][i]:.4f}]",
            float(rows["precision"][i]), float(rows["recall"][i]),
        ))
    return columns, out


# ---------------------------------------------------------------------------------------------- repeats


def repeat_dataset_name(dataset: str, seed: int) -> str:
    """Name of the dataset built for one repeat."""
    return f"{dataset}@seed{seed}"


def recorded_source(con, dataset: str) -> tuple[str, dict]:
    """(source folder, pair options) a built dataset was made with, from the ``datasets`` table."""
    from maya import store
    from maya.pairs.build import PairsError

    info = store.dataset_info(con, dataset)
    if info is None:
        raise PairsError(f"unknown dataset {dataset!r}: build it first, or pass the source folder of the originals")
    if info["origin"] != "build" or not info["source"]:
        raise PairsError(
            f"dataset {dataset!r} was imported ({info['source']}); repeats regenerate pairs with other seeds, "
            f"which needs a dataset built from a folder of originals")
    options = {k: v for k, v in (info["params"] or {}).items() if k != "kind"}
    return info["source"], options


def run_repeats(
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
    *,
    evaluate_one=None,
    flow_run_id: str | None = None,
    log=None,
) -> dict:
    """The study once per seed, then the spread of test F1 per method under one parent run.

    The pairs of each repeat are built from ``source`` (or, when None, from the source folder and pair
    options recorded for ``dataset``) into the dataset ``"<dataset>@seed<k>"``. ``evaluate_one(**kwargs)``
    runs one repeat and returns its summary (default :func:`maya.evaluation.study.run_study`; the flow
    passes its ``evaluate`` subflow). The stability rows go to ``metrics`` (split 'stability') under a
    parent run with flow 'evaluate-repeats'; each repeat's own run gets ``parent_run_id`` set to it; a
    failure marks the parent 'failed' after linking the repeats that finished.

    Returns: {"run_id", "dataset", "source", "seeds", "runs": [per repeat: run_id, dataset, seed, model,
    pairs, results], "stability": stability rows as a list of dicts}.
    """
    import logging

    from maya import store
    from maya.settings import load_settings
    from maya.store import study as study_store

    log = log or logging.getLogger("maya.study")
    if evaluate_one is None:
        from maya.evaluation.study import run_study as evaluate_one
    seeds = [int(s) for s in (seeds if seeds is not None else [0, 1, 2])]
    if not seeds:
        raise ValueError("evaluate_repeats needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeat: {seeds}")
    settings = load_settings(data_dir=data_dir, model=model, device=device, precision=precision,
                             batch_size=batch_size)
    con = store.connect(settings.db_path)
    try:
        if source is None:
            source, recorded = recorded_source(con, dataset)
            options = {**recorded, **(pair_options or {})}
        else:
            source = str(Path(source).resolve())
            options = dict(pair_options or {})
        parent = store.start_run(
            con, flow="evaluate-repeats", dataset=dataset, model=None,
            parameters={"dataset": dataset, "source": source, "seeds": seeds, "model": settings.model,
                        "methods": methods, "pair_options": options, "confidence": confidence,
                        "n_boot": n_boot, "bootstrap_seed": bootstrap_seed,
                        "datasets": [repeat_dataset_name(dataset, s) for s in seeds]},
            flow_run_id=flow_run_id or "")
    finally:
        con.close()  # each repeat opens the store itself

    children: list[dict] = []
    try:
        for seed in seeds:
            name = repeat_dataset_name(dataset, seed)
            log.info("repeat %d/%d: dataset %s", len(children) + 1, len(seeds), name)
            summary = evaluate_one(dataset=name, source=source, seed=seed, model=settings.model,
                                   data_dir=str(settings.data_dir), device=settings.device,
                                   precision=settings.precision, batch_size=settings.batch_size, methods=methods,
                                   pair_options=options)
            children.append({"run_id": summary["run_id"], "dataset": name, "seed": seed,
                             "model": summary["model"], "pairs": summary["pairs"], "results": summary["results"]})
        rows = stability_rows([c["results"] for c in children], confidence=confidence, n_boot=n_boot,
                              seed=bootstrap_seed)
    except BaseException:
        con = store.connect(settings.db_path)
        try:
            study_store.link_repeats(con, parent, [c["run_id"] for c in children])
            store.finish_run(con, parent, status="failed")
        finally:
            con.close()
        raise

    con = store.connect(settings.db_path)
    try:
        study_store.save_stability(con, parent, [c["run_id"] for c in children], children[0]["model"], rows)
        store.finish_run(con, parent, status="completed")
    finally:
        con.close()
    stability = [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in rows.items()}
                 for i in range(len(rows["method"]))]
    return {"run_id": parent, "dataset": dataset, "source": source, "seeds": seeds, "runs": children,
            "stability": stability}
