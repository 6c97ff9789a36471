"""ROC-AUC, average precision and recall at precision >= 0.99 on numbers worked out by hand."""

import numpy as np
import pytest

from maya.evaluation.selection import MethodResult, evaluate_pairs
from maya.evaluation.ranking import SUMMARY_COLUMNS, method_summary, ranking_score, recall_at_precision

# Six pairs, scores worked by hand below.
Y = np.array([1, 1, 0, 1, 0, 0], dtype=bool)
S = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
D = np.array([2, 30, 5, 10, 40, 3])


def _result(method, **t):
    thresholds = {"phash_accept": None, "phash_threshold": None, "clip_threshold": None, **t}
    return MethodResult(method, thresholds, 0.0, 0.0, 0.0, 0.0, 0.0, 0)


def _summary(results):
    split = np.array(["val"] * 6 + ["test"] * 6, dtype=object)
    return method_summary(np.r_[D, D], np.r_[S, S], np.r_[Y, Y], split, results)


def test_ranking_scores_follow_the_decision_rule():
    np.testing.assert_array_equal(ranking_score("phash", D, S, {}), -D)
    np.testing.assert_array_equal(ranking_score("clip", D, S, {}), S)
    hyb = ranking_score("hybrid", D, S, {"phash_threshold": 20, "clip_threshold": 0.5})
    np.testing.assert_array_equal(hyb, [0.9, -np.inf, 0.7, 0.6, -np.inf, 0.4])
    cas = ranking_score("cascade", D, S, {"phash_accept": 2, "phash_threshold": 20, "clip_threshold": 0.5})
    np.testing.assert_array_equal(cas, [np.inf, -np.inf, 0.7, 0.6, -np.inf, 0.4])
    # an unknown distance or a missing similarity is never a match: it ranks last
    got = ranking_score("clip", np.array([-1, 3]), np.array([0.99, np.nan]), {})
    np.testing.assert_array_equal(got, [-np.inf, -np.inf])


def test_recall_at_precision_by_hand():
    # thresholds 0.9 -> 1/1 (recall 1/3); 0.8 -> 2/2 (recall 2/3); 0.7 -> 2/3: best recall 2/3 at 0.8
    assert recall_at_precision(Y, S) == (pytest.approx(2 / 3), 0.8)
    # at precision >= 0.6, 0.6 gives 3/4 = 0.75 precision and recall 1
    assert recall_at_precision(Y, S, 0.6) == (1.0, 0.6)
    # ties: a negative tied with the top positive makes precision 1/2 at the top
    assert recall_at_precision([1, 0, 1], [0.9, 0.9, 0.1]) == (0.0, pytest.approx(np.nan, nan_ok=True))
    # +inf scores (the cascade's accept band) form a threshold of their own
    assert recall_at_precision([1, 1, 0], [np.inf, 0.5, 0.4]) == (pytest.approx(1.0), 0.5)


def test_method_summary_by_hand():
    results = [_result("clip", clip_threshold=0.75), _result("phash", phash_threshold=2),
               _result("hybrid", phash_threshold=20, clip_threshold=0.5),
               _result("cascade", phash_accept=2, phash_threshold=20, clip_threshold=0.95)]
    out = _summary(results)
    assert tuple(out) == SUMMARY_COLUMNS
    rows = {(out["split"][i], out["method"][i]): {k: out[k][i] for k in out} for i in range(len(out["method"]))}
    assert len(rows) == 8
    clip = rows[("test", "clip")]
    # positives 0.9, 0.8, 0.6 vs negatives 0.7, 0.5, 0.4: 8 of 9 pairs ordered right
    assert clip["roc_auc"] == pytest.approx(8 / 9)
    # positives at ranks 1, 2, 4: AP = (1/1 + 2/2 + 3/4) / 3
    assert clip["average_precision"] == pytest.approx((1 + 1 + 0.75) / 3)
    assert clip["recall_at_p99"] == pytest.approx(2 / 3) and clip["threshold_at_p99"] == 0.8
    assert clip["precision_at_val_p99_threshold"] == 1.0
    assert clip["recall_at_val_p99_threshold"] == pytest.approx(2 / 3)
    # at sim >= 0.75: tp 2, fp 0, fn 1 -> F1 0.8
    assert clip["f1_selected"] == pytest.approx(0.8) and clip["clip_fraction_selected"] == 1.0
    assert (clip["pairs"], clip["positives"]) == (6, 3)
    ph = rows[("test", "phash")]
    # -d: positives -2, -30, -10 vs negatives -5, -40, -3: 3 + 1 + 1 of 9
    assert ph["roc_auc"] == pytest.approx(5 / 9)
    assert ph["recall_at_p99"] == pytest.approx(1 / 3) and ph["threshold_at_p99"] == 2  # in distance units
    assert ph["clip_fraction_selected"] == 0.0 and ph["f1_selected"] == pytest.approx(0.5)
    hy = rows[("test", "hybrid")]
    # [0.9, -inf, 0.7, 0.6, -inf, 0.4]: the -inf positive ties with the -inf negative (half a pair)
    assert hy["roc_auc"] == pytest.approx(5.5 / 9)
    assert hy["clip_fraction_selected"] == pytest.approx(4 / 6)
    cas = rows[("test", "cascade")]
    assert cas["roc_auc"] == pytest.approx(5.5 / 9)
    # accept band (d <= 2) holds one positive: recall 1/3 at threshold +inf
    assert cas["recall_at_p99"] == pytest.approx(1 / 3) and cas["threshold_at_p99"] == np.inf
    assert np.ma.is_masked(out["phash_accept"][0]) and out["phash_accept"][-1] == 2


def test_one_class_split_has_no_auc():
    split = np.array(["val", "val", "test", "test"], dtype=object)
    out = method_summary([1, 2, 3, 4], [0.9, 0.1, 0.8, 0.7], [True, False, True, True], split,
                         [_result("clip", clip_threshold=0.5)])
    assert np.isnan(out["roc_auc"][1]) and out["average_precision"][1] == 1.0


def test_summary_agrees_with_evaluate_pairs_on_random_scores():
    rng = np.random.default_rng(0)
    n = 400
    y = rng.random(n) < 0.5
    d = np.where(y, rng.integers(0, 30, n), rng.integers(10, 50, n))
    s = np.where(y, rng.normal(0.85, 0.08, n), rng.normal(0.6, 0.15, n)).clip(-1, 1)
    split = np.where(rng.random(n) < 0.5, "val", "test").astype(object)
    _, results = evaluate_pairs(d, s, y, split)
    out = method_summary(d, s, y, split, results)
    for r in results:
        i = next(i for i in range(len(out["method"])) if out["method"][i] == r.method and out["split"][i] == "test")
        assert out["f1_selected"][i] == pytest.approx(r.test_f1, abs=1e-12), r.method
        assert out["recall_selected"][i] == pytest.approx(r.test_recall, abs=1e-12)
        assert out["clip_fraction_selected"][i] == pytest.approx(r.test_clip_fraction, abs=1e-12)
        assert 0.5 < out["roc_auc"][i] <= 1.0
