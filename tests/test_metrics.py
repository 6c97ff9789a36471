"""The decision rule, sweeps and selection, checked against brute force on known numbers."""

import numpy as np
import pytest

from maya.evaluation.selection import evaluate_pairs
from maya.evaluation.metrics import NO_ACCEPT, NO_REJECT, confusion, decide, select_best, sweep, sweep_method


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    d = np.where(y, rng.integers(0, 24, n), rng.integers(8, 40, n))
    s = np.where(y, rng.normal(0.85, 0.08, n), rng.normal(0.6, 0.12, n))
    d[::37] = -1  # unknown distances (failed images)
    s[::41] = np.nan
    return d, s, y


def test_decide_implements_the_one_rule():
    d = np.array([0, 5, 10, 20, 30, -1])
    s = np.array([0.1, 0.95, 0.5, 0.99, 0.99, 0.99])
    # accept band d<=5, reject d>20, otherwise similarity >= 0.9
    assert decide(d, s, 5, 20, 0.9).tolist() == [True, True, False, True, False, False]
    # clip-only ignores the distance entirely (except unknown distances are never accepted by pHash)
    assert decide(d[:5], s[:5], NO_ACCEPT, NO_REJECT, 0.9).tolist() == [False, True, False, True, True]


def test_counts_precision_recall_f1():
    c = confusion([1, 1, 0, 0, 1], [1, 0, 1, 0, 1])
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 1, 1)
    assert c.precision == pytest.approx(2 / 3) and c.recall == pytest.approx(2 / 3)
    assert c.f1 == pytest.approx(2 / 3)


@pytest.mark.parametrize("ta,tr", [(NO_ACCEPT, NO_REJECT), (NO_ACCEPT, 12), (4, 12), (10, 10)])
def test_sweep_equals_brute_force(ta, tr):
    d, s, y = _data()
    grid = np.round(np.arange(0.3, 1.0, 0.05), 3)
    res = sweep(d, s, y, t_accepts=[ta], t_rejects=[tr], t_clips=grid)
    known = d >= 0
    for k, tc in enumerate(grid):
        pred = decide(d, s, ta, tr, tc) & known
        c = confusion(pred, y)
        assert (res["tp"][k], res["fp"][k], res["fn"][k], res["tn"][k]) == (c.tp, c.fp, c.fn, c.tn)
        assert res["f1"][k] == pytest.approx(c.f1)
        middle = known & (d > ta) & (d <= tr)
        assert res["clip_fraction"][k] == pytest.approx(middle.mean())


def test_selection_is_made_on_val_and_reported_on_test():
    d, s, y = _data(600, seed=1)
    split = np.where(np.arange(len(y)) % 2 == 0, "val", "test")
    cols, results = evaluate_pairs(d, s, y, split)
    assert [r.method for r in results] == ["phash", "clip", "hybrid", "cascade"]
    for r in results:
        sel = cols["selected"] & (cols["method"] == r.method)
        assert sel.sum() == 2  # the val row and the test row at the same thresholds
        val_rows = (cols["method"] == r.method) & (cols["split"] == "val")
        assert cols["f1"][sel & (cols["split"] == "val")][0] == pytest.approx(cols["f1"][val_rows].max())
        test_sel = sel & (cols["split"] == "test")
        assert cols["f1"][test_sel][0] == pytest.approx(r.test_f1)
        # recompute the test F1 at the chosen thresholds by hand
        t = r.thresholds
        ta = t["phash_accept"] if t["phash_accept"] is not None else (t["phash_threshold"] if r.method == "phash" else NO_ACCEPT)
        tr = t["phash_threshold"] if t["phash_threshold"] is not None else NO_REJECT
        tc = t["clip_threshold"] if t["clip_threshold"] is not None else np.inf
        te = split == "test"
        c = confusion(decide(d[te], s[te], ta, tr, tc) & (d[te] >= 0), y[te])
        assert r.test_f1 == pytest.approx(c.f1)
    by = {r.method: r for r in results}
    # an embedding that separates the classes well beats pHash alone on this data
    assert by["clip"].test_f1 > by["phash"].test_f1
    # pairs with a failed image (unknown distance) are never sent to the model
    known_test = (d >= 0)[split == "test"].mean()
    assert by["clip"].test_clip_fraction == pytest.approx(known_test)
    assert by["hybrid"].test_clip_fraction < by["clip"].test_clip_fraction


def test_select_best_prefers_cheaper_then_middle_of_ties():
    rows = {"f1": np.array([0.5, 0.9, 0.9, 0.9, 0.9]), "clip_fraction": np.array([1, 1, 0.5, 0.5, 0.5])}
    assert select_best(rows) == 3


def test_hybrid_grid_is_two_dimensional():
    d, s, y = _data()
    res = sweep_method("hybrid", d, s, y)
    assert len(np.unique(res["t_reject"])) == 65 and len(np.unique(res["t_clip"])) > 300
