"""The study's pictures, drawn from what a run stored in DuckDB (metrics sweeps and per-pair scores).

Every ``plot_*`` function takes a (read-only is enough) connection, a run id and the PNG path to write,
and returns a :class:`Picture` whose ``data`` holds exactly the numbers drawn, so a test can re-derive
any plotted point from the database. matplotlib (Agg backend) is imported when the first picture is drawn.

Curves are on the 'test' split, with the thresholds chosen on 'val' marked, unless a picture says
otherwise (the hybrid heat-map shows both splits side by side).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maya.evaluation.metrics import select_best

#: One colour per method in every picture.
METHOD_COLORS = {"phash": "#d95f02", "clip": "#1f78b4", "hybrid": "#33a02c", "cascade": "#7b3294",
                 "phash-dihedral": "#e6ab02", "cascade-dihedral": "#e7298a", "clip-views": "#a6cee3",
                 "cascade-views": "#666666"}
METHOD_LABELS = {"phash": "pHash only", "clip": "CLIP only", "hybrid": "Hybrid (pHash pre-filter)",
                 "cascade": "Cascade (accept + reject bands)",
                 "phash-dihedral": "pHash dihedral (8 flips/turns)",
                 "cascade-dihedral": "Cascade on dihedral pHash (accept + reject bands)",
                 "clip-views": "CLIP only, best pair of views (inner regions)",
                 "cascade-views": "Cascade, best pair of views (dihedral pHash, inner regions)"}
#: Hybrid curves drawn in the F1-vs-threshold picture, besides the chosen pHash threshold.
HYBRID_CURVE_THRESHOLDS = (8, 16, 24, 32)
DPI = 110


@dataclass
class Picture:
    """One PNG: where it is, what it shows, and the numbers drawn (arrays keyed by series)."""

    name: str
    path: Path
    title: str
    caption: str
    data: dict = field(default_factory=dict)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    _pyplot().close(fig)
    return path


# ---------------------------------------------------------------------------------------------- reads


def selected_thresholds(con, run_id: int) -> dict[str, dict]:
    """{method: {phash_accept, phash_threshold, clip_threshold, val_f1, test_f1, test_precision,
    test_recall, test_clip_fraction}} for the thresholds chosen on 'val' in ``run_id``."""
    rows = con.execute(
        """SELECT v.method, v.phash_accept, v.phash_threshold, v.clip_threshold, v.f1,
                  t.f1, t.precision, t.recall, t.clip_fraction
           FROM metrics v JOIN metrics t ON t.run_id = v.run_id AND t.method = v.method
                AND t.split = 'test' AND t.selected
           WHERE v.run_id = ? AND v.split = 'val' AND v.selected""", [run_id]).fetchall()
    order = {m: i for i, m in enumerate(METHOD_COLORS)}
    out = {}
    for m, ta, tr, tc, vf1, tf1, tp, trc, tcf in sorted(rows, key=lambda r: order.get(r[0], 99)):
        out[m] = {"phash_accept": ta, "phash_threshold": tr, "clip_threshold": tc, "val_f1": vf1,
                  "test_f1": tf1, "test_precision": tp, "test_recall": trc, "test_clip_fraction": tcf}
    if not out:
        raise ValueError(f"run {run_id} has no selected metrics (is it a completed evaluate run?)")
    return out


def sweep_rows(con, run_id: int, method: str, split: str, *, phash_threshold: int | None = None,
               phash_accept: int | None = None) -> dict[str, np.ndarray]:
    """The stored sweep of one method on one split, ordered by (phash_threshold, clip_threshold);
    optionally only the rows at one pHash threshold / accept band."""
    q = ("SELECT phash_accept, phash_threshold, clip_threshold, tp, fp, fn, tn, precision, recall, f1, "
         "clip_fraction FROM metrics WHERE run_id = ? AND method = ? AND split = ?")
    args: list = [run_id, method, split]
    if phash_threshold is not None:
        q += " AND phash_threshold = ?"
        args.append(int(phash_threshold))
    if phash_accept is not None:
        q += " AND phash_accept = ?"
        args.append(int(phash_accept))
    q += " ORDER BY phash_accept NULLS FIRST, phash_threshold NULLS FIRST, clip_threshold NULLS FIRST"
    return con.execute(q, args).fetchnumpy()


def _test_scores(con, run_id: int, split: str = "test") -> dict[str, np.ndarray]:
    got = con.execute(
        """SELECT s.pair_id, s.phash_distance, s.clip_similarity, p.label, p.kind
           FROM scores s JOIN pairs p USING (dataset, pair_id)
           WHERE s.run_id = ? AND p.split = ? ORDER BY s.pair_id""", [run_id, split]).fetchnumpy()
    d = got["phash_distance"]
    got["phash_distance"] = np.asarray(np.ma.filled(d, -1) if isinstance(d, np.ma.MaskedArray) else d,
                                       dtype=np.int64)
    s = got["clip_similarity"]
    got["clip_similarity"] = np.asarray(np.ma.filled(s, np.nan) if isinstance(s, np.ma.MaskedArray) else s,
                                        dtype=np.float64)
    got["label"] = np.asarray(got["label"], dtype=bool)
    return got


def _similarity_floor(con, run_id: int) -> float:
    """Left edge of similarity axes: a little below the smallest similarity of the run (curves are flat
    below it)."""
    lo = con.execute("SELECT min(clip_similarity) FROM scores WHERE run_id = ? AND NOT isnan(clip_similarity)",
                     [run_id]).fetchone()[0]
    if lo is None:
        return -1.0
    return max(-1.0, float(np.floor((lo - 0.02) * 20) / 20))


def _f(x):
    return np.asarray(np.ma.filled(x, np.nan) if isinstance(x, np.ma.MaskedArray) else x, dtype=np.float64)


# ---------------------------------------------------------------------------------------------- pictures


def plot_f1_vs_clip_threshold(con, run_id: int, path: str | Path) -> Picture:
    """Test F1 against the similarity threshold: CLIP only (val dashed for reference), and Hybrid at
    several pHash pre-filter thresholds (the chosen one bold). data: {"clip": {"test": (t, f1),
    "val": (t, f1)}, "hybrid": {t_reject: (t, f1)}, "selected": {...}}."""
    plt = _pyplot()
    sel = selected_thresholds(con, run_id)
    data: dict = {"clip": {}, "hybrid": {}, "selected": sel}
    fig, ax = plt.subplots(figsize=(8, 5))
    if "clip" in sel:
        for split, style in (("test", "-"), ("val", "--")):
            r = sweep_rows(con, run_id, "clip", split)
            t, f1 = _f(r["clip_threshold"]), _f(r["f1"])
            data["clip"][split] = (t, f1)
            ax.plot(t, f1, style, color=METHOD_COLORS["clip"], lw=2 if split == "test" else 1,
                    label=f"CLIP only ({split})")
        ax.axvline(sel["clip"]["clip_threshold"], color=METHOD_COLORS["clip"], ls=":", lw=1)
    if "hybrid" in sel:
        chosen = int(sel["hybrid"]["phash_threshold"])
        trs = sorted(set(HYBRID_CURVE_THRESHOLDS) | {chosen})
        greens = plt.get_cmap("Greens")
        for k, tr in enumerate(trs):
            r = sweep_rows(con, run_id, "hybrid", "test", phash_threshold=tr)
            if len(r["f1"]) == 0:
                continue
            t, f1 = _f(r["clip_threshold"]), _f(r["f1"])
            data["hybrid"][tr] = (t, f1)
            bold = tr == chosen
            ax.plot(t, f1, color=METHOD_COLORS["hybrid"] if bold else greens(0.35 + 0.5 * k / max(1, len(trs))),
                    lw=2.2 if bold else 1,
                    label=f"Hybrid, pHash d <= {tr}" + (" (chosen)" if bold else ""))
        h = sel["hybrid"]
        ax.plot([h["clip_threshold"]], [h["test_f1"]], "o", color=METHOD_COLORS["hybrid"], ms=7)
    ax.set_xlim(_similarity_floor(con, run_id), 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("CLIP cosine-similarity threshold (match if similarity >= t)")
    ax.set_ylabel("F1 (test split)")
    ax.set_title(f"F1 vs CLIP threshold — run {run_id}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return Picture("f1_vs_clip_threshold", _save(fig, path), "F1 vs CLIP threshold",
                   "Test-split F1 of CLIP only and of Hybrid at several pHash pre-filter thresholds; the dotted "
                   "line and the dot mark the thresholds chosen on the validation split.", data)


def pr_points(con, run_id: int, method: str, sel: dict, split: str = "test") -> dict[str, np.ndarray]:
    """Precision-recall points of ``method`` from its stored sweep (pHash over distance, the others over
    the similarity threshold at the chosen pHash band); points with no predicted match are dropped."""
    from maya.evaluation.metrics import base_method

    t = sel[method]
    base = base_method(method)  # 'cascade-dihedral' is swept like 'cascade', on its own rows
    if base == "phash":
        r = sweep_rows(con, run_id, method, split)
    elif base == "clip":
        r = sweep_rows(con, run_id, method, split)
    elif base == "hybrid":
        r = sweep_rows(con, run_id, method, split, phash_threshold=t["phash_threshold"])
    else:
        r = sweep_rows(con, run_id, method, split, phash_threshold=t["phash_threshold"],
                       phash_accept=t["phash_accept"])
    keep = (np.asarray(r["tp"]) + np.asarray(r["fp"])) > 0
    return {"recall": _f(r["recall"])[keep], "precision": _f(r["precision"])[keep]}


def plot_pr_curves(con, run_id: int, path: str | Path, average_precision: dict | None = None) -> Picture:
    """Precision-recall curves of every method on the test split, the chosen point of each marked.
    ``average_precision``: {method: AP} shown in the legend. data: {method: {"recall", "precision"}}."""
    plt = _pyplot()
    sel = selected_thresholds(con, run_id)
    data = {}
    fig, ax = plt.subplots(figsize=(7, 5.5))
    for m in sel:
        pts = pr_points(con, run_id, m, sel)
        data[m] = pts
        label = METHOD_LABELS.get(m, m)
        if average_precision and m in average_precision and np.isfinite(average_precision[m]):
            label += f" (AP {average_precision[m]:.3f})"
        # in threshold order: the curve is traced as the threshold moves (its zigzags are real)
        ax.plot(pts["recall"], pts["precision"], "-", color=METHOD_COLORS.get(m), lw=1.6, label=label)
        ax.plot([sel[m]["test_recall"]], [sel[m]["test_precision"]], "o", color=METHOD_COLORS.get(m), ms=7)
    ax.axhline(0.99, color="grey", ls=":", lw=1)
    ax.text(1.0, 0.99, "precision 0.99", fontsize=7, color="grey", va="bottom", ha="right")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(max(0.0, min([0.5] + [float(np.min(p["precision"])) for p in data.values() if len(p["precision"])]) - 0.05), 1.02)
    ax.set_xlabel("recall (test split)")
    ax.set_ylabel("precision (test split)")
    ax.set_title(f"Precision-recall — run {run_id}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return Picture("pr_curves", _save(fig, path), "Precision-recall curves",
                   "Each method's curve over its threshold (pHash: distance; the others: similarity at the "
                   "chosen pHash band), test split; dots are the points chosen on the validation split.", data)


def hybrid_grid(con, run_id: int, split: str) -> dict[str, np.ndarray]:
    """Hybrid F1 over the 2-D grid: {"t_reject": (R,), "t_clip": (C,), "f1": (R, C), "clip_fraction": (R,)}."""
    r = sweep_rows(con, run_id, "hybrid", split)
    tr, tc, f1 = np.asarray(r["phash_threshold"], dtype=np.int64), _f(r["clip_threshold"]), _f(r["f1"])
    trs, tcs = np.unique(tr), np.unique(tc)
    grid = np.full((len(trs), len(tcs)), np.nan)
    grid[np.searchsorted(trs, tr), np.searchsorted(tcs, tc)] = f1
    cf = np.zeros(len(trs))
    cf[np.searchsorted(trs, tr)] = _f(r["clip_fraction"])
    return {"t_reject": trs, "t_clip": tcs, "f1": grid, "clip_fraction": cf}


def plot_hybrid_heatmap(con, run_id: int, path: str | Path) -> Picture:
    """Hybrid F1 over (pHash pre-filter threshold x CLIP threshold), validation (where the point is
    chosen) and test side by side. data: {"val": hybrid_grid, "test": hybrid_grid}."""
    plt = _pyplot()
    sel = selected_thresholds(con, run_id).get("hybrid")
    if sel is None:
        raise ValueError(f"run {run_id} has no hybrid rows")
    lo = _similarity_floor(con, run_id)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    data = {}
    for ax, split in zip(axes, ("val", "test")):
        g = hybrid_grid(con, run_id, split)
        data[split] = g
        cols = g["t_clip"] >= lo - 1e-9
        tc = g["t_clip"][cols]
        step = float(np.median(np.diff(tc))) if len(tc) > 1 else 0.005
        im = ax.imshow(g["f1"][:, cols], origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                       extent=(tc[0] - step / 2, tc[-1] + step / 2, g["t_reject"][0] - 0.5, g["t_reject"][-1] + 0.5),
                       interpolation="nearest")
        ax.plot([sel["clip_threshold"]], [sel["phash_threshold"]], marker="x", color="red", ms=10, mew=2)
        ax.set_title(f"{split} split" + (" (thresholds chosen here)" if split == "val" else ""))
        ax.set_xlabel("CLIP threshold (match if similarity >= t)")
    axes[0].set_ylabel("pHash pre-filter: CLIP only asked if d <= t")
    fig.colorbar(im, ax=axes, label="F1", shrink=0.9)
    fig.suptitle(f"Hybrid F1 over the 2-D grid — run {run_id}")
    return Picture("hybrid_f1_heatmap", _save(fig, path), "Hybrid F1 heat-map",
                   "F1 of Hybrid for every (pHash pre-filter, CLIP) threshold pair; the red cross is the pair "
                   "chosen on the validation split (left), and where it lands on the test split (right).", data)


def tradeoff_points(con, run_id: int) -> dict[str, np.ndarray]:
    """Per pHash pre-filter threshold: the CLIP threshold chosen on 'val' at that pre-filter (best val F1,
    ties as maya.evaluation.metrics.select_best), and the test F1 and test clip fraction it gives."""
    val, test = hybrid_grid(con, run_id, "val"), hybrid_grid(con, run_id, "test")
    t_clip, f1, frac = [], [], []
    for i in range(len(val["t_reject"])):
        j = select_best({"f1": val["f1"][i], "clip_fraction": np.zeros(len(val["t_clip"]))})
        t_clip.append(val["t_clip"][j])
        f1.append(test["f1"][i, j])
        frac.append(test["clip_fraction"][i])
    return {"t_reject": val["t_reject"], "t_clip": np.array(t_clip), "test_f1": np.array(f1),
            "test_clip_fraction": np.array(frac)}


def plot_f1_vs_clip_fraction(con, run_id: int, path: str | Path) -> Picture:
    """The pre-filter's trade-off: test F1 against the fraction of pairs sent to CLIP, one point per pHash
    pre-filter threshold (CLIP threshold chosen on val at each), with the methods' chosen points.
    data: tradeoff_points + {"methods": {method: (clip_fraction, f1)}}."""
    plt = _pyplot()
    sel = selected_thresholds(con, run_id)
    pts = tradeoff_points(con, run_id)
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot(pts["test_clip_fraction"], pts["test_f1"], "-o", color=METHOD_COLORS["hybrid"], ms=3, lw=1.2,
            label="Hybrid, one point per pHash pre-filter threshold")
    last_x = -1.0
    for i, tr in enumerate(pts["t_reject"]):
        if tr % 8 == 0 and pts["test_clip_fraction"][i] - last_x > 0.04:
            last_x = pts["test_clip_fraction"][i]
            ax.annotate(f"d<={tr}", (pts["test_clip_fraction"][i], pts["test_f1"][i]), fontsize=7,
                        textcoords="offset points", xytext=(3, -9))
    methods = {}
    for m, t in sel.items():
        methods[m] = (t["test_clip_fraction"], t["test_f1"])
        ax.plot([t["test_clip_fraction"]], [t["test_f1"]], "D", color=METHOD_COLORS.get(m), ms=8,
                label=f"{METHOD_LABELS.get(m, m)} (chosen)", mec="black", mew=0.5)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("fraction of pairs sent to CLIP (test split)")
    ax.set_ylabel("F1 (test split)")
    ax.set_title(f"What the pre-filter saves — run {run_id}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return Picture("f1_vs_clip_fraction", _save(fig, path), "F1 vs fraction of pairs sent to CLIP",
                   "Each green point is Hybrid at one pHash pre-filter threshold (its CLIP threshold chosen on "
                   "val); x is the share of test pairs CLIP had to score. Diamonds: each method's chosen point.",
                   {**pts, "methods": methods})


def recall_by_kind(con, run_id: int, split: str = "test") -> dict:
    """Per transformation kind (chains folded into 'chain'): positives and the recall of each method at its
    chosen thresholds; per negative kind: negatives and false-positive rate. From the pair_decisions view."""
    rows = con.execute(
        """SELECT kind_group, label, method, count(*) AS n, avg(predicted::INT) AS rate
           FROM pair_decisions WHERE run_id = ? AND split = ? GROUP BY ALL ORDER BY kind_group, method""",
        [run_id, split]).fetchall()
    methods = [m for m in METHOD_COLORS if any(r[2] == m for r in rows)]
    out: dict = {"methods": methods, "positive": {}, "negative": {}}
    for kind, label, method, n, rate in rows:
        d = out["positive" if label else "negative"].setdefault(kind, {"n": n})
        d[method] = float(rate)
    return out


def plot_recall_by_kind(con, run_id: int, path: str | Path) -> Picture:
    """Recall per transformation kind (test split, chosen thresholds) as a table-like heat-map, kinds x
    methods; the negatives' kinds below show the false-positive rate. data: recall_by_kind()."""
    plt = _pyplot()
    rk = recall_by_kind(con, run_id)
    methods = rk["methods"]
    pos = sorted(rk["positive"].items())
    neg = sorted(rk["negative"].items())
    parts = [("positive", pos, "recall of duplicates", "RdYlGn")] + (
        [("negative", neg, "false-positive rate of non-duplicates", "RdYlGn_r")] if neg else [])
    heights = [max(1, len(rows)) for _, rows, _, _ in parts]
    fig, axes = plt.subplots(len(parts), 1, figsize=(2.4 + 1.3 * len(methods), 1.3 + 0.24 * sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (_, rows, what, cmap) in zip(axes[:, 0], parts):
        values = np.array([[v.get(m, np.nan) for m in methods] for _, v in rows], dtype=np.float64).reshape(
            len(rows), len(methods))
        ax.imshow(values, cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if np.isfinite(values[i, j]):
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7)
        ax.set_yticks(range(len(rows)), [f"{k} (n={v['n']})" for k, v in rows], fontsize=7)
        ax.set_xticks(range(len(methods)), [METHOD_LABELS.get(m, m).split(" (")[0] for m in methods], fontsize=8)
        ax.xaxis.tick_top()
        ax.set_title(what, fontsize=9, loc="left")
    fig.suptitle(f"Per-kind results at the chosen thresholds, test split — run {run_id}", fontsize=10)
    return Picture("recall_by_kind", _save(fig, path), "Recall per transformation kind",
                   "Share of each kind's duplicate test pairs each method finds at its chosen thresholds "
                   "(combinations of edits are grouped as 'chain'); below, the share of each kind of "
                   "non-duplicate wrongly matched.", rk)


def plot_score_histograms(con, run_id: int, path: str | Path) -> Picture:
    """Histograms of pHash distance and CLIP similarity, positives vs negatives (test split), with the
    chosen thresholds. data: {"phash": {"bins", "positive", "negative"}, "clip": {...}} (counts)."""
    plt = _pyplot()
    sel = selected_thresholds(con, run_id)
    sc = _test_scores(con, run_id)
    y, d, s = sc["label"], sc["phash_distance"], sc["clip_similarity"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2))
    data = {}
    bins_d = np.arange(-0.5, 65.5, 1.0)
    known = d >= 0
    hp, _ = np.histogram(d[known & y], bins_d)
    hn, _ = np.histogram(d[known & ~y], bins_d)
    data["phash"] = {"bins": bins_d, "positive": hp, "negative": hn}
    a1.hist([d[known & y], d[known & ~y]], bins_d, histtype="stepfilled", alpha=0.5,
            color=["#1b9e77", "#e7298a"], label=["duplicates", "non-duplicates"])
    if "phash" in sel:
        a1.axvline(sel["phash"]["phash_threshold"] + 0.5, color=METHOD_COLORS["phash"], ls="--", lw=1.2,
                   label=f"pHash only: d <= {sel['phash']['phash_threshold']}")
    if "hybrid" in sel:
        a1.axvline(sel["hybrid"]["phash_threshold"] + 0.5, color=METHOD_COLORS["hybrid"], ls=":", lw=1.2,
                   label=f"Hybrid pre-filter: d <= {sel['hybrid']['phash_threshold']}")
    a1.set_xlabel("pHash Hamming distance (bits)")
    a1.set_ylabel("pairs (test split)")
    a1.legend(fontsize=7)
    ok = ~np.isnan(s)
    lo = _similarity_floor(con, run_id)
    bins_s = np.linspace(lo, 1.0, 61)
    sp, _ = np.histogram(s[ok & y], bins_s)
    sn, _ = np.histogram(s[ok & ~y], bins_s)
    data["clip"] = {"bins": bins_s, "positive": sp, "negative": sn}
    a2.hist([s[ok & y], s[ok & ~y]], bins_s, histtype="stepfilled", alpha=0.5,
            color=["#1b9e77", "#e7298a"], label=["duplicates", "non-duplicates"])
    for m, ls in (("clip", "--"), ("hybrid", ":")):
        if m in sel and sel[m]["clip_threshold"] is not None:
            a2.axvline(sel[m]["clip_threshold"], color=METHOD_COLORS[m], ls=ls, lw=1.2,
                       label=f"{METHOD_LABELS[m]}: sim >= {sel[m]['clip_threshold']:.3f}")
    a2.set_xlabel("CLIP cosine similarity")
    a2.legend(fontsize=7)
    fig.suptitle(f"Scores of duplicates vs non-duplicates (test split) — run {run_id}")
    return Picture("score_histograms", _save(fig, path), "Score histograms",
                   "How far apart the two classes lie on each score, test split; lines are the chosen "
                   "thresholds.", data)


def plot_stability(con, parent_run_id: int, path: str | Path) -> Picture:
    """Test F1 of each repeat (one dot per seed) and the mean with its bootstrap interval, per method,
    for an 'evaluate-repeats' run. data: {method: {"f1": per-repeat test F1, "mean", "ci": (lo, hi)}}."""
    plt = _pyplot()
    per_run = con.execute(
        """SELECT m.method, r.run_id, m.f1 FROM runs r JOIN metrics m ON m.run_id = r.run_id
           WHERE r.parent_run_id = ? AND m.split = 'test' AND m.selected ORDER BY r.run_id""",
        [parent_run_id]).fetchall()
    stab = con.execute(
        "SELECT method, f1, f1_ci_low, f1_ci_high FROM metrics WHERE run_id = ? AND split = 'stability'",
        [parent_run_id]).fetchall()
    methods = [m for m in METHOD_COLORS if any(r[0] == m for r in stab)] + sorted(
        {r[0] for r in stab} - set(METHOD_COLORS))
    data = {}
    fig, ax = plt.subplots(figsize=(7, 4))
    for k, m in enumerate(methods):
        f1s = np.array([f for mm, _, f in per_run if mm == m])
        mean, lo, hi = next((f, lo_, hi_) for mm, f, lo_, hi_ in stab if mm == m)
        data[m] = {"f1": f1s, "mean": mean, "ci": (lo, hi)}
        ax.plot(np.full(len(f1s), k) + np.linspace(-0.12, 0.12, len(f1s)), f1s, "o", color=METHOD_COLORS.get(m),
                alpha=0.6, ms=5)
        ax.errorbar([k + 0.3], [mean], yerr=[[mean - lo], [hi - mean]], fmt="s", color="black", capsize=4, ms=5)
    ax.set_xticks(range(len(methods)), [METHOD_LABELS.get(m, m) for m in methods], fontsize=8, rotation=10)
    ax.set_ylabel("test F1")
    ax.set_title(f"Stability over repeats — run {parent_run_id}")
    ax.grid(axis="y", alpha=0.3)
    return Picture("stability", _save(fig, path), "Stability over seeds",
                   "Dots: test F1 of each repeat (pairs regenerated with another seed); squares: mean with "
                   "its 95 % bootstrap interval.", data)


#: The evaluate run's pictures, in report order.
EVALUATE_PICTURES = (plot_f1_vs_clip_threshold, plot_pr_curves, plot_hybrid_heatmap, plot_f1_vs_clip_fraction,
                     plot_recall_by_kind, plot_score_histograms)
