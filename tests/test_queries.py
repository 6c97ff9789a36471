"""Every analysis query in sql/queries and every view in sql/views.sql runs on a demo-made store and
returns rows that agree with the Python side."""

from pathlib import Path

import numpy as np
import pytest

from maya import store
from tests.demo_db import demo_store  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

QUERIES = sorted((Path(__file__).resolve().parent.parent / "sql" / "queries").glob("*.sql"))


def test_the_queries_folder_holds_the_issue_questions():
    names = {q.stem for q in QUERIES}
    assert {"best_f1_per_method", "hybrid_vs_clip_at_equal_recall", "recall_by_kind",
            "phash_clip_disagreements", "run_drift"} <= names


@pytest.fixture(scope="module")
def con(demo_store):  # noqa: F811
    # the settings `maya sql` uses: DuckDB lets one process open a file with one configuration at a time
    from maya.store.queries import NO_FILES

    c = store.connect(demo_store.db_path, read_only=True, config=dict(NO_FILES))
    yield c
    c.close()


@pytest.mark.parametrize("query", QUERIES, ids=[q.stem for q in QUERIES])
def test_query_runs_and_returns_rows(con, query):
    cur = con.execute(query.read_text())
    rows = cur.fetchall()
    assert rows, f"{query.name} returned no rows"
    assert all(d[0] for d in cur.description)


def test_queries_run_through_the_cli_by_name(demo_store, capsys):  # noqa: F811
    from maya.cli import main

    assert main(["sql", "--data-dir", str(demo_store.data_dir), "best_f1_per_method"]) == 0
    out = capsys.readouterr().out
    for method in ("phash", "clip", "hybrid"):
        assert method in out


def test_views_agree_with_the_metrics_table(con, demo_store):  # noqa: F811
    run = demo_store.rerun
    assert con.execute("SELECT run_id FROM latest_evaluate_run").fetchone()[0] == run
    # pair_decisions (SQL) reproduces the stored selected counts of every method on both splits
    got = con.execute(
        """SELECT method, split, count(*) FILTER (WHERE outcome = 'tp'), count(*) FILTER (WHERE outcome = 'fp'),
                  count(*) FILTER (WHERE outcome = 'fn'), count(*) FILTER (WHERE outcome = 'tn')
           FROM pair_decisions WHERE run_id = ? GROUP BY ALL ORDER BY ALL""", [run]).fetchall()
    want = con.execute(
        "SELECT method, split, tp, fp, fn, tn FROM metrics WHERE run_id = ? AND selected ORDER BY ALL", [run]
    ).fetchall()
    assert got == want and len(want) == 16  # 8 methods (4 plain, 2 dihedral, 2 views) x 2 splits
    # ... and agrees pair by pair with maya.evaluation.metrics.decide
    from maya.evaluation.metrics import decide

    for method, ta, tr, tc in con.execute(
            "SELECT DISTINCT method, t_accept, t_reject, t_clip FROM pair_decisions WHERE run_id = ?", [run]
    ).fetchall():
        rows = con.execute(
            "SELECT phash_distance, clip_similarity, predicted FROM pair_decisions "
            "WHERE run_id = ? AND method = ? ORDER BY pair_id", [run, method]).fetchnumpy()
        pred = decide(rows["phash_distance"], rows["clip_similarity"], ta, tr, tc)
        np.testing.assert_array_equal(pred, rows["predicted"], err_msg=method)


def test_run_drift_shows_the_rerun_is_identical(con, demo_store):  # noqa: F811
    rows = con.execute(
        "SELECT * FROM (" + (Path(QUERIES[0].parent) / "run_drift.sql").read_text().rstrip().rstrip(";")
        + ") WHERE run_id = ?", [demo_store.rerun]).fetchall()
    assert len(rows) == 8  # 4 plain methods, 2 dihedral, 2 views
    for run_id, dataset, method, previous, f1, change, thresholds_changed, scores_changed in rows:
        assert previous == demo_store.repeat_runs[0]
        assert change == 0 and thresholds_changed is False and scores_changed == 0, method


def test_best_f1_view_is_an_upper_bound_of_the_selected_f1(con, demo_store):  # noqa: F811
    rows = con.execute(
        """SELECT s.method, s.test_f1, b.best_f1, b.grid_points FROM selected_metrics s
           JOIN best_f1 b ON b.run_id = s.run_id AND b.method = s.method AND b.split = 'test'
           WHERE s.run_id = ?""", [demo_store.rerun]).fetchall()
    assert {r[0] for r in rows} == {"phash", "clip", "hybrid", "cascade", "phash-dihedral", "cascade-dihedral",
                                 "clip-views", "cascade-views"}
    for method, test_f1, best, n in rows:
        assert best >= test_f1 - 1e-12 and n > 1, method
    direct = con.execute("SELECT max(f1) FROM metrics WHERE run_id = ? AND split = 'test' AND method = 'hybrid'",
                         [demo_store.rerun]).fetchone()[0]
    assert dict((r[0], r[2]) for r in rows)["hybrid"] == direct
