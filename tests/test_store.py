"""The DuckDB store: idempotent schema, the names users' SQL relies on, a clear message when locked."""

import subprocess
import sys
import time

import duckdb
import numpy as np
import pytest

from maya import store

TABLE_COLUMNS = {
    "images": {"sha256", "size_bytes", "width", "height", "format", "status", "error"},
    "files": {"path", "sha256"},
    "datasets": {"name"},
    "pairs": {"dataset", "pair_id", "a", "b", "label", "kind", "split", "params"},
    "hashes": {"sha256", "algorithm", "bits"},
    "embeddings": {"sha256", "model", "vector"},
    "runs": {"run_id", "started_at", "finished_at", "parameters", "code_version", "status"},
    "scores": {"run_id", "pair_id", "phash_distance", "clip_similarity", "clip_computed"},
    "metrics": {"run_id", "split", "method", "precision", "recall", "f1", "selected", "tp", "fp", "fn", "tn",
                "clip_fraction"},
}


def test_schema_is_idempotent_and_has_the_documented_names(tmp_path):
    db = tmp_path / "m.duckdb"
    con = store.connect(db)
    con.close()
    con = store.connect(db)  # applying twice must not fail or duplicate anything
    for table, cols in TABLE_COLUMNS.items():
        got = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()}
        assert cols <= got, (table, cols - got)
    assert con.execute("SELECT data_type FROM information_schema.columns WHERE table_name='pairs' "
                       "AND column_name='label'").fetchone()[0] == "BOOLEAN"
    con.close()


def test_embeddings_round_trip_and_sql_cosine(tmp_path):
    con = store.connect(tmp_path / "m.duckdb")
    rng = np.random.default_rng(0)
    v = rng.normal(size=(5, 7)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    shas = [f"s{i}" for i in range(5)]
    store.insert_embeddings(con, shas, "m1", v)
    store.insert_embeddings(con, shas, "m1", v * 0)  # existing rows are kept, not overwritten
    got = store.load_embeddings(con, shas, "m1")
    np.testing.assert_allclose(np.stack([got[s] for s in shas]), v, rtol=1e-6)
    cos = con.execute("SELECT list_cosine_similarity(a.vector, b.vector) FROM embeddings a, embeddings b "
                      "WHERE a.sha256='s0' AND b.sha256='s1'").fetchone()[0]
    assert cos == pytest.approx(float(v[0] @ v[1]), abs=1e-5)
    fixed = con.execute("SELECT array_cosine_similarity(a.vector::FLOAT[7], b.vector::FLOAT[7]) "
                        "FROM embeddings a, embeddings b WHERE a.sha256='s0' AND b.sha256='s1'").fetchone()[0]
    assert fixed == pytest.approx(cos, abs=1e-6)
    con.close()


def test_hash_bits_keep_all_64_bits(tmp_path):
    con = store.connect(tmp_path / "m.duckdb")
    bits = np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64)
    store.insert_rows(con, "hashes", {"sha256": ["a", "b", "c", "d"], "algorithm": ["x"] * 4, "bits": bits})
    got = store.load_hashes(con, ["a", "b", "c", "d"], "x")
    assert [got[k] for k in "abcd"] == [int(b) for b in bits]
    assert con.execute("SELECT printf('%016x', bits) FROM hashes WHERE sha256='d'").fetchone()[0] == "f" * 16
    con.close()


def test_second_process_gets_a_clear_message_naming_the_holder(tmp_path):
    db = tmp_path / "maya.duckdb"
    store.connect(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb,sys,time; c=duckdb.connect({str(db)!r}); print('ready', flush=True); "
                               "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        t = time.perf_counter()
        with pytest.raises(store.StoreLockedError) as exc:
            store.connect(db)
        assert time.perf_counter() - t < 5
        msg = str(exc.value)
        assert f"process {holder.pid}" in msg and "one writer" in msg and str(db) in msg
        # the CLI says the same in one line, exit code 1, no traceback
        out = subprocess.run([sys.executable, "-m", "maya.cli", "sql", "--data-dir", str(tmp_path),
                              "select 1"], capture_output=True, text=True)
        assert out.returncode == 1
        assert "in use by process" in out.stderr and "Traceback" not in out.stderr
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def test_a_flow_runs_maya_run_is_found_by_its_flow_run_id(tmp_path):
    con = store.connect(tmp_path / "m.duckdb")
    assert store.run_of_flow_run(con, "abc") is None
    run = store.start_run(con, flow="evaluate", dataset="d", model=None, parameters={}, flow_run_id="abc")
    store.start_run(con, flow="dedup", dataset=None, model=None, parameters={}, flow_run_id="other")
    store.finish_run(con, run, status="completed", counts={"hashes_computed": 3, "hashes_reused": 1,
                                                           "embeddings_computed": 2, "embeddings_reused": 0,
                                                           "images_failed": 1})
    assert store.run_of_flow_run(con, "abc") == {
        "run_id": run, "status": "completed", "hashes_computed": 3, "hashes_reused": 1,
        "embeddings_computed": 2, "embeddings_reused": 0, "images_failed": 1}
    con.close()


def test_dataset_names_are_sorted_and_empty_for_a_new_store(tmp_path):
    con = store.connect(tmp_path / "m.duckdb")
    assert store.dataset_names(con) == []
    for name in ("zeta", "alpha"):
        con.execute("INSERT INTO datasets (name, origin, source, seed, params) VALUES (?, 'import', '', 0, '{}')",
                    [name])
    assert store.dataset_names(con) == ["alpha", "zeta"]
    con.close()


def test_user_sql_gives_columns_and_rows_or_a_one_line_usage_error(tmp_path):
    from maya.errors import EXIT_USAGE
    from maya.store.queries import QueryError, named_query, run_query

    con = store.connect(tmp_path / "m.duckdb")
    got = run_query(con, "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2, 'y' ORDER BY a")
    assert (got.columns, got.rows) == (["a", "b"], [(1, "x"), (2, "y")])
    with pytest.raises(QueryError) as exc:
        run_query(con, "SELECT * FROM nowhere")
    assert str(exc.value).startswith("query failed: ") and "\n" not in str(exc.value)
    assert exc.value.exit_code == EXIT_USAGE
    assert "SELECT" in named_query("best_f1_per_method").upper()
    assert named_query("no_such_query") is None and named_query("select 1") is None
    assert named_query("queries/../schema") is None
    con.close()


def test_drop_cache_gives_back_duckdbs_pages_and_keeps_the_memory_limit(tmp_path):
    con = store.connect(tmp_path / "m.duckdb")
    rows = {"k": np.arange(20000), "v": np.array([np.random.default_rng(k).bytes(2048) for k in range(20000)],  # noqa: F841
                                               dtype=object)}  # 40 MB that no compression shrinks
    con.execute("CREATE TABLE blobs AS SELECT k, v::BLOB AS v FROM rows")
    con.execute("CHECKPOINT")
    limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    def held():
        con.execute("SELECT sum(octet_length(v)) FROM blobs").fetchone()  # reads every page
        return con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0]

    before = held()
    store.drop_cache(con)
    after = con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0]
    assert before > 30 * 2**20 and after < before / 4, (before, after)
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == limit
    assert held() > before / 2  # the pages come back from the file when read again


def test_grid_thumbnails_round_trip_deflated_raw_and_as_earlier_stores_wrote_them(tmp_path):
    from maya.store import grid as grid_store

    con = store.connect(tmp_path / "m.duckdb")
    yy, xx = np.mgrid[0:96, 0:96]
    photo_like = ((xx * 2 + yy) % 256).astype(np.uint8)  # structure that deflates
    noise = np.random.default_rng(3).integers(0, 256, (96, 96), dtype=np.uint8)  # does not
    grid_store.save_thumbs(con, ["a" * 64, "b" * 64], "gray96-grid-v1", np.stack([photo_like, noise]))
    rows = {  # noqa: F841  (a row as stores before deflating wrote it: the raw pixels)
        "sha256": np.array(["c" * 64], dtype=object), "algorithm": np.array(["gray96-grid-v1"], dtype=object),
        "side": np.array([96], dtype=np.int32), "pixels": np.array([photo_like.tobytes()], dtype=object)}
    con.execute("INSERT INTO grid_thumbs (sha256, algorithm, side, pixels) SELECT * FROM rows")
    sizes = dict(con.execute("SELECT sha256, octet_length(pixels) FROM grid_thumbs").fetchall())
    assert sizes["a" * 64] < 9216 // 2 and sizes["b" * 64] == 9216 == sizes["c" * 64]
    got = grid_store.load_thumbs(con, ["a" * 64, "b" * 64, "c" * 64], "gray96-grid-v1")
    assert (got["a" * 64] == photo_like).all() and (got["b" * 64] == noise).all() and (got["c" * 64] == photo_like).all()


def test_checkpoint_empties_the_log_keeps_the_rows_and_the_memory_limit(tmp_path):
    con = store.connect(tmp_path / "m.duckdb")
    limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    rows = {"k": np.arange(3000), "v": np.array([np.random.default_rng(k).bytes(4096) for k in range(3000)],  # noqa: F841
                                              dtype=object)}
    con.execute("CREATE TABLE blobs AS SELECT k, v::BLOB AS v FROM rows")
    assert store.wal_bytes(con) > 4 * 2**20
    store.checkpoint(con)
    assert store.wal_bytes(con) == 0
    assert con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == limit
    con.close()
    con = store.connect(tmp_path / "m.duckdb", read_only=True)
    assert con.execute("SELECT count(*), sum(octet_length(v)) FROM blobs").fetchone() == (3000, 3000 * 4096)
    assert store.wal_bytes(duckdb.connect()) == 0  # in memory: no log
