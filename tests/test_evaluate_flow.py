"""The evaluate flow end to end on real photos, a tiny real CLIP and a real DuckDB file."""

import numpy as np
import pytest

from maya import store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def first_run(prefect_server, photo_dir, tiny_clip_dir, tmp_path_factory):
    from maya.flows.evaluate import evaluate

    data = tmp_path_factory.mktemp("data")
    summary = evaluate(dataset="t", source=str(photo_dir), seed=3, model=str(tiny_clip_dir), data_dir=str(data),
                       pair_options={"positives_per_original": 6})
    return data, summary


def test_tables_are_filled(first_run):
    data, summary = first_run
    con = store.connect(data / "maya.duckdb", read_only=True)
    for table in ("images", "files", "datasets", "pairs", "hashes", "embeddings", "runs", "scores", "metrics"):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table
    n_pairs = con.execute("SELECT count(*) FROM pairs WHERE dataset='t'").fetchone()[0]
    assert con.execute("SELECT count(*) FROM scores WHERE run_id=?", [summary["run_id"]]).fetchone()[0] == n_pairs
    methods = {m for (m,) in con.execute(
        "SELECT DISTINCT method FROM metrics WHERE split='test' AND selected AND run_id=?", [summary["run_id"]]
    ).fetchall()}
    assert {"phash", "clip", "hybrid"} <= methods
    # the stored distance equals what DuckDB recomputes from the stored hashes
    bad = con.execute("""
        SELECT count(*) FROM scores s JOIN pairs p USING (dataset, pair_id)
        JOIN hashes ha ON ha.sha256 = p.a AND ha.algorithm = 'phash64-v2'
        JOIN hashes hb ON hb.sha256 = p.b AND hb.algorithm = 'phash64-v2'
        WHERE s.run_id = ? AND bit_count(xor(ha.bits, hb.bits)) <> s.phash_distance""", [summary["run_id"]]
    ).fetchone()[0]
    assert bad == 0
    # ... and the similarity equals the cosine of the stored embeddings
    sims = con.execute("""
        SELECT s.clip_similarity, list_cosine_similarity(ea.vector, eb.vector) FROM scores s
        JOIN pairs p USING (dataset, pair_id) JOIN runs r USING (run_id)
        JOIN embeddings ea ON ea.sha256 = p.a AND ea.model = r.model
        JOIN embeddings eb ON eb.sha256 = p.b AND eb.model = r.model WHERE s.run_id = ?""", [summary["run_id"]]
    ).fetchall()
    assert len(sims) == n_pairs
    np.testing.assert_allclose([a for a, _ in sims], [b for _, b in sims], atol=1e-5)
    run = con.execute("SELECT status, hashes_computed, embeddings_computed FROM runs WHERE run_id=?",
                      [summary["run_id"]]).fetchone()
    assert run[0] == "completed" and run[1] > 0 and run[2] > 0
    con.close()


def test_second_run_computes_nothing_and_adds_a_run(first_run, tiny_clip_dir):
    from maya.flows.evaluate import evaluate

    data, first = first_run
    second = evaluate(dataset="t", model=str(tiny_clip_dir), data_dir=str(data))
    assert second["run_id"] != first["run_id"]
    assert second["counts"]["hashes_computed"] == 0 and second["counts"]["embeddings_computed"] == 0
    assert second["counts"]["hashes_reused"] == first["images"]
    con = store.connect(data / "maya.duckdb", read_only=True)
    assert con.execute("SELECT count(*) FROM runs WHERE flow='evaluate'").fetchone()[0] >= 2
    assert con.execute("SELECT hashes_computed, embeddings_computed FROM runs WHERE run_id=?",
                       [second["run_id"]]).fetchone() == (0, 0)
    # same scores, same metrics: the study is deterministic on the CPU
    q = "SELECT pair_id, phash_distance, clip_similarity FROM scores WHERE run_id=? ORDER BY pair_id"
    assert con.execute(q, [first["run_id"]]).fetchall() == con.execute(q, [second["run_id"]]).fetchall()
    con.close()


def test_unknown_dataset_is_a_clear_error(prefect_server, tiny_clip_dir, tmp_path):
    from maya.flows.evaluate import evaluate
    from maya.pairs.build import PairsError

    with pytest.raises(PairsError, match="unknown dataset"):
        evaluate(dataset="nope", model=str(tiny_clip_dir), data_dir=str(tmp_path))
