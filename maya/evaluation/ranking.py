"""Threshold-free measures the field reports: ROC-AUC, average precision, recall at precision >= 0.99.

F1 at a chosen threshold (maya.evaluation.metrics) says how one operating point does; published benchmarks rank
pairs by a score and report the whole curve's summary instead: ISC2021's µAP (average precision over
all pairs), thorn/perception's recall at precision >= 0.99, and ROC-AUC. Each method becomes a ranking
score per pair, higher = more likely a duplicate:

==========  ===================================================================
method      score
==========  ===================================================================
phash       -distance
clip        similarity
hybrid      similarity where d <= t_reject, -inf otherwise (the pre-filter drops it)
cascade     +inf where d <= t_accept, -inf where d > t_reject, similarity otherwise
==========  ===================================================================

with the pHash thresholds chosen on the validation split (maya.evaluation.selection.MethodResult). A pair whose
distance is unknown (an image failed) scores -inf, a missing similarity counts as -inf too: such pairs
are never matched, as in maya.evaluation.metrics.decide.
"""

from __future__ import annotations

import numpy as np

from maya.evaluation.metrics import NO_ACCEPT, NO_REJECT, base_method, confusion, decide

#: The precision the recall is read at (thorn/perception's headline number).
TARGET_PRECISION = 0.99

#: Columns of :func:`method_summary`, in the order of the ``method_summary`` table (after run_id).
SUMMARY_COLUMNS = (
    "split", "method", "pairs", "positives", "phash_accept", "phash_threshold", "clip_threshold",
    "precision_selected", "recall_selected", "f1_selected", "clip_fraction_selected",
    "roc_auc", "average_precision", "recall_at_p99", "threshold_at_p99",
    "precision_at_val_p99_threshold", "recall_at_val_p99_threshold",
)


def rule_of(method: str, thresholds: dict) -> tuple[int, int, float]:
    """(t_accept, t_reject, t_clip) of the one decision rule for a method's user-facing thresholds
    (``MethodResult.thresholds``: phash_accept, phash_threshold, clip_threshold; None where unused)."""
    ta, tr, tc = thresholds.get("phash_accept"), thresholds.get("phash_threshold"), thresholds.get("clip_threshold")
    if base_method(method) == "phash":
        return int(tr), int(tr), float("inf")
    return (NO_ACCEPT if ta is None else int(ta)), (NO_REJECT if tr is None else int(tr)), float(tc)


def ranking_score(method: str, phash_distance, similarity, thresholds: dict) -> np.ndarray:
    """Per-pair ranking score (N,) float64 for ``method`` (see the module docstring); may hold +-inf.

    Args:
        method: 'phash' | 'clip' | 'hybrid' | 'cascade'.
        phash_distance: (N,) ints, Hamming distance in bits (0..64); negative = unknown.
        similarity: (N,) floats, cosine similarity; NaN = not available.
        thresholds: the chosen thresholds (only hybrid's t_reject and cascade's t_accept/t_reject are used).
    """
    d = np.asarray(phash_distance, dtype=np.int64)
    s = np.asarray(similarity, dtype=np.float64)
    known = d >= 0
    s = np.where(np.isnan(s), -np.inf, s)
    method = base_method(method)  # '-dihedral' / '-views' methods: the same rule on their own scores
    if method == "phash":
        return np.where(known, -d.astype(np.float64), -np.inf)
    if method == "clip":
        return np.where(known, s, -np.inf)
    ta, tr, _ = rule_of(method, thresholds)
    if method == "hybrid":
        return np.where(known & (d <= tr), s, -np.inf)
    if method == "cascade":
        out = np.where(known & (d <= tr), s, -np.inf)
        return np.where(known & (d <= ta), np.inf, out)
    raise ValueError(f"unknown method {method!r}")


def _finite_ranks(score: np.ndarray) -> np.ndarray:
    """The same order with +-inf replaced by finite values just outside the finite range (sklearn
    rejects infinite scores; only the order matters to ROC and PR)."""
    finite = score[np.isfinite(score)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 0.0)
    out = score.copy()
    out[score == -np.inf] = lo - 1.0
    out[score == np.inf] = hi + 1.0
    return out


def recall_at_precision(label, score, target: float = TARGET_PRECISION) -> tuple[float, float]:
    """Best recall over thresholds ``score >= t`` whose precision is >= ``target``, and that ``t``.

    Returns (recall, threshold); (0.0, nan) when no threshold reaches the target with any true positive.
    Among thresholds with the same best recall, the highest is returned (the most conservative). Scores
    may hold +-inf: a threshold of +inf means "only the +inf pairs match".
    """
    y = np.asarray(label, dtype=bool)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="stable")
    s_sorted, y_sorted = score[order], y[order]
    # a threshold can only sit at a distinct score value: cut after the last of each tied run
    last_of_run = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp = np.cumsum(y_sorted)[last_of_run]
    fp = np.cumsum(~y_sorted)[last_of_run]
    thr = s_sorted[last_of_run]
    n_pos = int(y.sum())
    ok = (tp > 0) & (tp >= target * (tp + fp) - 1e-12) & (thr > -np.inf)
    if not ok.any() or n_pos == 0:
        return 0.0, float("nan")
    recall = tp / n_pos
    best = recall[ok].max()
    i = np.flatnonzero(ok & (recall >= best))[0]  # the highest threshold with that recall
    return float(best), float(thr[i])


def _precision_recall_at(label, score, threshold: float) -> tuple[float, float]:
    if np.isnan(threshold):
        return float("nan"), float("nan")
    c = confusion(np.asarray(score) >= threshold, label)
    return c.precision, c.recall


def _threshold_in_user_units(method: str, t: float) -> float:
    # phash scores are -distance: report the distance (match if d <= t), as everywhere else.
    if method == "phash" and np.isfinite(t):
        return -t
    return t


def method_summary(phash_distance, similarity, label, split, results) -> dict[str, np.ndarray]:
    """One row per split ('val', 'test') x method of ``results``: the threshold-free measures, and the
    metrics at the thresholds chosen on 'val'.

    Args:
        phash_distance: (N,) ints, Hamming distance (negative = unknown).
        similarity: (N,) floats, cosine similarity (NaN = not available).
        label: (N,) bools, true for duplicates.
        split: (N,) 'val' / 'test'.
        results: the ``maya.evaluation.selection.MethodResult`` list of ``evaluate_pairs`` (chosen thresholds).
    Returns:
        Columns :data:`SUMMARY_COLUMNS` (numpy arrays, NaN / masked where undefined), ready for the
        ``method_summary`` table once a ``run_id`` column is added. ``roc_auc`` and
        ``average_precision`` come from scikit-learn; ``recall_at_p99``/``threshold_at_p99`` are read
        on each split (an oracle on 'test'); ``*_at_val_p99_threshold`` apply the 'val' threshold to the
        split (the honest number on 'test'). Thresholds are in user units: pHash distance (match if
        d <= t) for phash, similarity (match if s >= t) otherwise; +inf means only the accept band.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    d = np.asarray(phash_distance, dtype=np.int64)
    s = np.asarray(similarity, dtype=np.float64)
    y = np.asarray(label, dtype=bool)
    sp = np.asarray(split, dtype=object)
    rows: dict[str, list] = {k: [] for k in SUMMARY_COLUMNS}
    for r in results:
        score_all = ranking_score(r.method, d, s, r.thresholds)
        val_thr = None
        for name in ("val", "test"):
            m = sp == name
            yy, score = y[m], score_all[m]
            finite = _finite_ranks(score)
            two_classes = 0 < yy.sum() < len(yy)
            rec99, thr = recall_at_precision(yy, score)
            if name == "val":
                val_thr = thr
            p_val, r_val = _precision_recall_at(yy, score, val_thr)
            ta, tr, tc = rule_of(r.method, r.thresholds)
            c = confusion(decide(d[m], s[m], ta, tr, tc), yy)
            n_model = int(np.sum((d[m] >= 0) & (d[m] > ta) & (d[m] <= tr)))
            t = r.thresholds
            rows["split"].append(name)
            rows["method"].append(r.method)
            rows["pairs"].append(int(m.sum()))
            rows["positives"].append(int(yy.sum()))
            rows["phash_accept"].append(t.get("phash_accept"))
            rows["phash_threshold"].append(t.get("phash_threshold"))
            rows["clip_threshold"].append(t.get("clip_threshold"))
            rows["precision_selected"].append(c.precision)
            rows["recall_selected"].append(c.recall)
            rows["f1_selected"].append(c.f1)
            rows["clip_fraction_selected"].append(n_model / m.sum() if m.any() else float("nan"))
            rows["roc_auc"].append(float(roc_auc_score(yy, finite)) if two_classes else float("nan"))
            rows["average_precision"].append(float(average_precision_score(yy, finite)) if yy.any() else float("nan"))
            rows["recall_at_p99"].append(rec99)
            rows["threshold_at_p99"].append(_threshold_in_user_units(r.method, thr))
            rows["precision_at_val_p99_threshold"].append(p_val)
            rows["recall_at_val_p99_threshold"].append(r_val)
    out: dict[str, np.ndarray] = {}
    for k, v in rows.items():
        if k in ("split", "method"):
            out[k] = np.array(v, dtype=object)
        elif k in ("pairs", "positives"):
            out[k] = np.array(v, dtype=np.int64)
        elif k in ("phash_accept", "phash_threshold"):
            out[k] = np.ma.masked_array([0 if x is None else int(x) for x in v], mask=[x is None for x in v],
                                        dtype=np.int64)
        elif k == "clip_threshold":
            out[k] = np.ma.masked_array([0.0 if x is None else float(x) for x in v], mask=[x is None for x in v],
                                        dtype=np.float64)
        else:
            out[k] = np.array(v, dtype=np.float64)
    return out
