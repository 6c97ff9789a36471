"""Stability: bootstrap math on known numbers, the repeats flow's rows, and same seed -> same metrics."""

import numpy as np
import pytest

from maya import store
from maya.evaluation.stability import bootstrap_interval, spread, stability_rows, stability_table
from tests.demo_db import PAIR_OPTIONS, SEEDS, demo_store  # noqa: F401  (fixture)

# ---------------------------------------------------------------------------------------------- math


def test_constant_values_have_a_zero_width_interval():
    sp = spread([0.8, 0.8, 0.8])
    assert sp.repeats == 3 and sp.std == pytest.approx(0.0, abs=1e-12)
    assert sp.mean == pytest.approx(0.8) and sp.ci_low == pytest.approx(0.8) and sp.ci_high == pytest.approx(0.8)


def test_two_values_give_the_exact_bootstrap_distribution():
    # Resampling [0, 1] twice: means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4, so the 2.5 % and 97.5 %
    # quantiles are 0 and 1, and about half the resamples sit at 0.5.
    lo, hi = bootstrap_interval([0.0, 1.0], n_boot=4000, seed=1)
    assert (lo, hi) == (0.0, 1.0)
    sp = spread([0.0, 1.0])
    assert sp.mean == 0.5 and sp.std == pytest.approx(np.sqrt(0.5))
    # a 40 % interval (quantiles 0.3 and 0.7) lies inside the 0.5 atom
    assert bootstrap_interval([0.0, 1.0], confidence=0.4, n_boot=4000, seed=1) == (0.5, 0.5)


def test_large_sample_interval_matches_the_normal_approximation():
    x = np.random.default_rng(7).normal(0.7, 0.05, size=400)
    lo, hi = bootstrap_interval(x, n_boot=20000, seed=3)
    se = np.std(x, ddof=0) / np.sqrt(len(x))  # the bootstrap's plug-in standard error
    assert lo == pytest.approx(x.mean() - 1.96 * se, abs=0.15 * se)
    assert hi == pytest.approx(x.mean() + 1.96 * se, abs=0.15 * se)


def test_bootstrap_is_seeded():
    x = np.random.default_rng(0).uniform(0.7, 0.9, size=30)
    assert bootstrap_interval(x, seed=5) == bootstrap_interval(x, seed=5)
    assert bootstrap_interval(x, seed=5, n_boot=500) != bootstrap_interval(x, seed=6, n_boot=500)


def test_one_run_has_no_std_and_a_point_interval():
    sp = spread([0.75])
    assert np.isnan(sp.std) and (sp.ci_low, sp.ci_high) == (0.75, 0.75)


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        bootstrap_interval([])
    with pytest.raises(ValueError):
        bootstrap_interval([0.5, np.nan])
    with pytest.raises(ValueError):
        bootstrap_interval([0.5], confidence=1.0)


def test_stability_rows_summarise_each_method():
    runs = [
        [{"method": "clip", "test_f1": 0.8, "test_precision": 0.9, "test_recall": 0.7, "test_clip_fraction": 1.0},
         {"method": "phash", "test_f1": 0.6, "test_precision": 1.0, "test_recall": 0.4, "test_clip_fraction": 0.0}],
        [{"method": "clip", "test_f1": 0.9, "test_precision": 0.95, "test_recall": 0.85, "test_clip_fraction": 1.0},
         {"method": "phash", "test_f1": 0.7, "test_precision": 1.0, "test_recall": 0.55, "test_clip_fraction": 0.0}],
    ]
    rows = stability_rows(runs, n_boot=1000)
    assert list(rows["method"]) == ["clip", "phash"]
    assert set(rows["split"]) == {"stability"} and not rows["selected"].any()
    np.testing.assert_allclose(rows["f1"], [0.85, 0.65])
    np.testing.assert_allclose(rows["f1_std"], [np.sqrt(0.005)] * 2)
    np.testing.assert_allclose(rows["recall"], [0.775, 0.475])
    np.testing.assert_array_equal(rows["repeats"], [2, 2])
    assert all(rows["f1_ci_low"] <= rows["f1"]) and all(rows["f1"] <= rows["f1_ci_high"])
    cols, table = stability_table(rows)
    assert table[0][0] == "clip" and "0.8500 ± 0.0707" in table[0][2]


# ---------------------------------------------------------------------------------------------- flows


@pytest.mark.slow
def test_repeats_flow_writes_stability_rows_under_a_parent_run(demo_store):  # noqa: F811
    con = store.connect(demo_store.db_path, read_only=True)
    try:
        parent = con.execute("SELECT flow, status, model FROM runs WHERE run_id = ?",
                             [demo_store.repeats_run]).fetchone()
        assert parent[0] == "evaluate-repeats" and parent[1] == "completed" and parent[2]
        children = [r for (r,) in con.execute(
            "SELECT run_id FROM runs WHERE parent_run_id = ? ORDER BY run_id", [demo_store.repeats_run]).fetchall()]
        assert tuple(children) == demo_store.repeat_runs and len(children) == len(SEEDS)
        datasets = {d for (d,) in con.execute(
            f"SELECT dataset FROM runs WHERE run_id IN ({', '.join(map(str, children))})").fetchall()}
        assert datasets == {f"demo@seed{s}" for s in SEEDS}
        # validation and test rows for every method in each repeat
        for run in children:
            got = set(con.execute("SELECT DISTINCT split, method FROM metrics WHERE run_id = ?", [run]).fetchall())
            assert {(sp, m) for sp in ("val", "test") for m in ("phash", "clip", "hybrid")} <= got
        rows = con.execute(
            "SELECT method, repeats, f1, f1_std, f1_ci_low, f1_ci_high, selected FROM metrics "
            "WHERE run_id = ? AND split = 'stability' ORDER BY method", [demo_store.repeats_run]).fetchall()
        assert {r[0] for r in rows} == {"phash", "clip", "hybrid", "cascade", "phash-dihedral", "cascade-dihedral",
                                 "clip-views", "cascade-views"}
        for method, k, mean, std, lo, hi, selected in rows:
            f1s = [f for (f,) in con.execute(
                f"SELECT f1 FROM metrics WHERE split = 'test' AND selected AND method = ? "
                f"AND run_id IN ({', '.join(map(str, children))}) ORDER BY run_id", [method]).fetchall()]
            assert k == len(SEEDS) and not selected
            assert mean == pytest.approx(np.mean(f1s)) and std == pytest.approx(np.std(f1s, ddof=1))
            assert min(f1s) - 1e-12 <= lo <= mean <= hi <= max(f1s) + 1e-12
        # the stability view and `WHERE split = 'test' AND selected` keep them apart
        assert con.execute("SELECT count(*) FROM stability WHERE run_id = ?",
                           [demo_store.repeats_run]).fetchone()[0] == 8
        assert con.execute("SELECT count(*) FROM metrics WHERE run_id = ? AND split = 'test'",
                           [demo_store.repeats_run]).fetchone()[0] == 0
    finally:
        con.close()
    summary = demo_store.repeats_summary
    assert summary["seeds"] == list(SEEDS) and len(summary["stability"]) == 8


METRIC_COLUMNS = ("split, method, phash_threshold, phash_accept, clip_threshold, tp, fp, fn, tn, precision, "
                  "recall, f1, clip_fraction, selected")


@pytest.mark.slow
def test_same_seed_from_scratch_gives_identical_metric_rows(demo_store, tmp_path):  # noqa: F811
    """Pairs regenerated, images re-derived, hashes and embeddings recomputed in a fresh store: every metric
    row (all sweeps, both splits) equals the first repeat's, bit for bit, on the CPU."""
    from maya.flows.evaluate import evaluate

    again = evaluate(dataset="again", source=str(demo_store.source), seed=SEEDS[0], model=demo_store.model,
                     data_dir=str(tmp_path), pair_options=dict(PAIR_OPTIONS), device="cpu")
    assert again["counts"]["embeddings_computed"] > 0  # nothing reused: a real recomputation
    q = f"SELECT {METRIC_COLUMNS} FROM metrics WHERE run_id = ? ORDER BY {METRIC_COLUMNS}"
    fresh = store.connect(tmp_path / "maya.duckdb", read_only=True)
    first = store.connect(demo_store.db_path, read_only=True)
    try:
        a = first.execute(q, [demo_store.repeat_runs[0]]).fetchall()
        b = fresh.execute(q, [again["run_id"]]).fetchall()
        sa = first.execute("SELECT pair_id, phash_distance, clip_similarity FROM scores WHERE run_id = ? "
                           "ORDER BY pair_id", [demo_store.repeat_runs[0]]).fetchall()
        sb = fresh.execute("SELECT pair_id, phash_distance, clip_similarity FROM scores WHERE run_id = ? "
                           "ORDER BY pair_id", [again["run_id"]]).fetchall()
    finally:
        fresh.close()
        first.close()
    assert len(a) > 1000
    assert sa == sb
    assert a == b


@pytest.mark.slow
def test_repeats_read_the_source_of_a_built_dataset_and_refuse_an_imported_one(tmp_path):
    from maya.evaluation.stability import recorded_source
    from maya.pairs.build import PairsError

    con = store.connect(tmp_path / "maya.duckdb")
    try:
        con.execute("INSERT INTO datasets (name, origin, source, seed, params) VALUES "
                    "('built', 'build', '/photos', 0, '{\"kind\": \"build\", \"positives_per_original\": 3}'), "
                    "('imp', 'import', '/pairs.csv', 0, '{\"kind\": \"import\"}')")
        assert recorded_source(con, "built") == ("/photos", {"positives_per_original": 3})
        with pytest.raises(PairsError, match="imported"):
            recorded_source(con, "imp")
        with pytest.raises(PairsError, match="unknown dataset"):
            recorded_source(con, "nope")
    finally:
        con.close()
