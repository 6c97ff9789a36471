"""Evaluate scored pairs: sweep every method on both splits, choose thresholds on 'val', report 'test'."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maya.evaluation.metrics import METHODS, select_best, sweep_method, thresholds_of


@dataclass(frozen=True)
class MethodResult:
    method: str
    thresholds: dict  # phash_accept, phash_threshold, clip_threshold (None where unused)
    val_f1: float
    test_precision: float
    test_recall: float
    test_f1: float
    test_clip_fraction: float
    test_pairs: int


def _metric_columns(method: str, split: str, rows: dict, selected: np.ndarray) -> dict[str, np.ndarray]:
    n = len(rows["tp"])
    ta, tr, tc = rows["t_accept"], rows["t_reject"], rows["t_clip"]
    none_i = np.ma.masked_all(n, dtype=np.int64)
    none_f = np.ma.masked_all(n, dtype=np.float64)
    cols = {
        "split": np.full(n, split, dtype=object),
        "method": np.full(n, method, dtype=object),
        "phash_threshold": none_i if method == "clip" else tr.astype(np.int64),
        "phash_accept": ta.astype(np.int64) if method == "cascade" else none_i,
        "clip_threshold": none_f if method == "phash" else tc.astype(np.float64),
    }
    for k in ("tp", "fp", "fn", "tn"):
        cols[k] = rows[k].astype(np.int64)
    for k in ("precision", "recall", "f1", "clip_fraction"):
        cols[k] = rows[k].astype(np.float64)
    cols["selected"] = selected
    return cols


def evaluate_pairs(
    phash_distance, similarity, label, split, *, methods=METHODS
) -> tuple[dict[str, np.ndarray], list[MethodResult]]:
    """Sweep each method on the 'val' and 'test' pairs; pick thresholds by val F1.

    Args:
        phash_distance: (N,) ints, -1 where unknown (an image failed to load).
        similarity: (N,) floats, NaN where no embedding similarity exists.
        label: (N,) bools, true for duplicates.
        split: (N,) 'val' / 'test'.
    Returns:
        (metrics columns ready for the ``metrics`` table without run_id, one MethodResult per method).
        For 'cascade' only the slice at the chosen accept band is returned (the full 3-D grid would be
        hundreds of thousands of rows); selection still searches the whole grid.
    """
    d = np.asarray(phash_distance, dtype=np.int64)
    s = np.asarray(similarity, dtype=np.float64)
    y = np.asarray(label, dtype=bool)
    split = np.asarray(split, dtype=object)
    val, test = split == "val", split == "test"
    if not val.any() or not test.any():
        raise ValueError(f"need pairs in both splits (val: {int(val.sum())}, test: {int(test.sum())})")
    parts: list[dict] = []
    results: list[MethodResult] = []
    for method in methods:
        v = sweep_method(method, d[val], s[val], y[val])
        t = sweep_method(method, d[test], s[test], y[test])
        i = select_best(v)
        keep = np.ones(len(v["tp"]), dtype=bool)
        if method == "cascade":
            keep = v["t_accept"] == v["t_accept"][i]
        # val and test sweeps use the same grid in the same order, so row i is the same thresholds.
        chosen = np.zeros(len(v["tp"]), dtype=bool)
        chosen[i] = True
        parts.append(_metric_columns(method, "val", {k: a[keep] for k, a in v.items()}, chosen[keep]))
        parts.append(_metric_columns(method, "test", {k: a[keep] for k, a in t.items()}, chosen[keep]))
        results.append(
            MethodResult(
                method=method,
                thresholds=thresholds_of(method, v, i),
                val_f1=float(v["f1"][i]),
                test_precision=float(t["precision"][i]),
                test_recall=float(t["recall"][i]),
                test_f1=float(t["f1"][i]),
                test_clip_fraction=float(t["clip_fraction"][i]),
                test_pairs=int(test.sum()),
            )
        )
    cols = {k: np.ma.concatenate([p[k] for p in parts]) if isinstance(parts[0][k], np.ma.MaskedArray)
            or any(isinstance(p[k], np.ma.MaskedArray) for p in parts)
            else np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return cols, results


def evaluate_scores(phash_distance, similarity, label, split, methods):
    """The study's evaluation step, a pure function of the scores: per-method sweeps, thresholds chosen on
    'val' and reported on 'test' (:func:`evaluate_pairs`), and the field's ranking measures
    (:func:`maya.evaluation.ranking.method_summary`). Returns (metric columns, MethodResults, summary columns)."""
    from maya.evaluation.ranking import method_summary

    metrics, results = evaluate_pairs(phash_distance, similarity, label, split, methods=tuple(methods))
    return metrics, results, method_summary(phash_distance, similarity, label, split, results)
