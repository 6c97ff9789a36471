"""Decisions and metrics: one decision rule, threshold sweeps, honest selection.

The rule (DESIGN.md): a pair with pHash distance ``d`` and embedding similarity ``s`` is a match when
``d <= t_accept``, is not a match when ``d > t_reject``, and otherwise is a match when ``s >= t_clip``.
Every method is a setting of it:

==========  =========  ==========  =======
method      t_accept   t_reject    t_clip
==========  =========  ==========  =======
phash       t          t           --
clip        -1 (none)  64 (none)   t
hybrid      -1 (none)  t_h         t_c
cascade     t_a        t_r         t_c
==========  =========  ==========  =======

``clip_fraction`` is the fraction of pairs the rule had to send to the embedding model
(``t_accept < d <= t_reject``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maya.hashing import DEFAULT

HASH_BITS = DEFAULT.bits  # 64 for pHash
NO_ACCEPT = -1
NO_REJECT = HASH_BITS
#: Fixed similarity grid (cosine similarity, step 0.005) so curves compare across runs and models.
CLIP_GRID = np.round(np.arange(-1.0, 1.0 + 1e-9, 0.005), 4)
PHASH_GRID = np.arange(0, HASH_BITS + 1)
#: Cascade accept-band candidates (no negative is usually that close; see the study).
CASCADE_ACCEPT_GRID = np.arange(0, 21)

METHODS = ("phash", "clip", "hybrid", "cascade")
#: Methods on other scores of the same pairs, by suffix: the same rule and grids as the method named before
#: the suffix, on other inputs. ``-dihedral``: the dihedral pHash distance (``maya.hashing.dihedral``, the least
#: over the 8 flips/turns); ``-views``: the best pair of views (``maya.view_features``: inner regions too).
DIHEDRAL_SUFFIX = "-dihedral"
VIEWS_SUFFIX = "-views"
DIHEDRAL_METHODS = ("phash-dihedral", "cascade-dihedral")
VIEWS_METHODS = ("clip-views", "cascade-views")
#: What the study evaluates by default: plain, dihedral and views side by side.
STUDY_METHODS = METHODS + DIHEDRAL_METHODS + VIEWS_METHODS
#: The score columns (distance, similarity) each suffix decides on.
METHOD_INPUTS = {"": ("phash_distance", "clip_similarity"),
                 DIHEDRAL_SUFFIX: ("dihedral_distance", "clip_similarity"),
                 VIEWS_SUFFIX: ("views_distance", "views_similarity")}


def method_suffix(method: str) -> str:
    """``"-dihedral"``, ``"-views"`` or ``""``: which scores ``method`` decides on (:data:`METHOD_INPUTS`)."""
    return next((x for x in (DIHEDRAL_SUFFIX, VIEWS_SUFFIX) if method.endswith(x)), "")


def base_method(method: str) -> str:
    """The plain method a method is a setting of: ``"cascade-dihedral"`` -> ``"cascade"``."""
    suffix = method_suffix(method)
    return method[:-len(suffix)] if suffix else method


def decide(d, s, t_accept: int, t_reject: int, t_clip: float) -> np.ndarray:
    """Vectorised decision rule (:class:`maya.rule.Rule`, without the embedding-only clause). ``d`` (N,)
    ints (negative = unknown -> no match), ``s`` (N,) floats (NaN = not available -> the embedding test fails)."""
    from maya.rule import Rule

    return Rule(t_accept, t_reject, t_clip).matches(d, s)


@dataclass(frozen=True)
class Counts:
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom else 0.0


def confusion(pred, label) -> Counts:
    pred = np.asarray(pred, dtype=bool)
    label = np.asarray(label, dtype=bool)
    tp = int(np.sum(pred & label))
    fp = int(np.sum(pred & ~label))
    fn = int(np.sum(~pred & label))
    tn = int(np.sum(~pred & ~label))
    return Counts(tp, fp, fn, tn)


def _prf(tp, fp, fn):
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return precision, recall, f1


def sweep(d, s, label, *, t_accepts, t_rejects, t_clips) -> dict[str, np.ndarray]:
    """Counts for every (t_accept, t_reject, t_clip) in the product of the grids.

    Pairs whose distance is unknown (negative, e.g. an image failed) are never matched; NaN similarities
    never pass the embedding test. Cost: O(len(t_accepts) * len(t_rejects) * N log N), not times the
    similarity grid (counts come from sorted similarities and ``searchsorted``).

    Returns columns ``t_accept, t_reject, t_clip, tp, fp, fn, tn, precision, recall, f1, clip_fraction``.
    """
    d = np.asarray(d, dtype=np.int64)
    s = np.asarray(s, dtype=np.float64)
    y = np.asarray(label, dtype=bool)
    t_clips = np.asarray(t_clips, dtype=np.float64)
    n = len(y)
    n_pos = int(y.sum())
    n_neg = n - n_pos
    known = d >= 0
    s_ok = np.where(np.isnan(s), -np.inf, s)
    out: dict[str, list] = {k: [] for k in ("t_accept", "t_reject", "t_clip", "tp", "fp", "clip_fraction")}
    for ta in t_accepts:
        accepted = known & (d <= ta)
        acc_tp = int(np.sum(accepted & y))
        acc_fp = int(np.sum(accepted & ~y))
        for tr in t_rejects:
            if tr < ta:
                continue
            middle = known & (d > ta) & (d <= tr)
            pos_s = np.sort(s_ok[middle & y])
            neg_s = np.sort(s_ok[middle & ~y])
            # number of similarities >= t for each t
            tp = acc_tp + len(pos_s) - np.searchsorted(pos_s, t_clips, side="left")
            fp = acc_fp + len(neg_s) - np.searchsorted(neg_s, t_clips, side="left")
            k = len(t_clips)
            out["t_accept"].append(np.full(k, ta))
            out["t_reject"].append(np.full(k, tr))
            out["t_clip"].append(t_clips)
            out["tp"].append(tp)
            out["fp"].append(fp)
            out["clip_fraction"].append(np.full(k, middle.sum() / n if n else 0.0))
    res = {k: np.concatenate(v) if v else np.array([]) for k, v in out.items()}
    res["tp"] = res["tp"].astype(np.int64)
    res["fp"] = res["fp"].astype(np.int64)
    res["fn"] = n_pos - res["tp"]
    res["tn"] = n_neg - res["fp"]
    res["precision"], res["recall"], res["f1"] = _prf(res["tp"], res["fp"], res["fn"])
    return res


def method_grid(method: str) -> dict:
    """The threshold grids swept for ``method``."""
    if method == "phash":
        # t_accept = t_reject = t: the embedding is never asked; one similarity value suffices.
        return {"pairs": [(t, t) for t in PHASH_GRID], "t_clips": np.array([np.inf])}
    if method == "clip":
        return {"pairs": [(NO_ACCEPT, NO_REJECT)], "t_clips": CLIP_GRID}
    if method == "hybrid":
        return {"pairs": [(NO_ACCEPT, t) for t in PHASH_GRID], "t_clips": CLIP_GRID}
    if method == "cascade":
        pairs = [(ta, tr) for ta in CASCADE_ACCEPT_GRID for tr in PHASH_GRID if tr > ta]
        return {"pairs": pairs, "t_clips": CLIP_GRID}
    raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")


def sweep_method(method: str, d, s, label) -> dict[str, np.ndarray]:
    grid = method_grid(method)
    parts = []
    by_accept: dict[int, list[int]] = {}
    for ta, tr in grid["pairs"]:
        by_accept.setdefault(ta, []).append(tr)
    for ta, trs in by_accept.items():
        if method == "phash":
            for tr in trs:
                parts.append(sweep(d, s, label, t_accepts=[ta], t_rejects=[tr], t_clips=grid["t_clips"]))
        else:
            parts.append(sweep(d, s, label, t_accepts=[ta], t_rejects=trs, t_clips=grid["t_clips"]))
    res = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    res["method"] = np.full(len(res["tp"]), method, dtype=object)
    return res


def select_best(rows: dict[str, np.ndarray]) -> int:
    """Index of the row with the best F1; ties go to the smaller clip fraction, then to the middle of
    the tied run of thresholds (robust to where a flat optimum starts), deterministic."""
    f1 = rows["f1"]
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    cf = rows["clip_fraction"][best]
    best = best[cf <= cf.min() + 1e-12]
    return int(best[len(best) // 2])


def thresholds_of(method: str, rows: dict[str, np.ndarray], i: int) -> dict:
    """The user-facing thresholds of row ``i`` (None where the method has none)."""
    ta, tr, tc = int(rows["t_accept"][i]), int(rows["t_reject"][i]), float(rows["t_clip"][i])
    if method == "phash":
        return {"phash_accept": None, "phash_threshold": tr, "clip_threshold": None}
    if method == "clip":
        return {"phash_accept": None, "phash_threshold": None, "clip_threshold": tc}
    if method == "hybrid":
        return {"phash_accept": None, "phash_threshold": tr, "clip_threshold": tc}
    return {"phash_accept": ta, "phash_threshold": tr, "clip_threshold": tc}
