"""Reading embeddings back from a real DuckDB store: every row in rowid order a range at a time, whatever other
models' rows lie between and whatever was deleted; a matrix in the asked order by either way of reading."""

import numpy as np
import pytest

from maya import store
from maya.store import dedup as dedup_store
from maya.store import index as index_store


@pytest.fixture()
def con(tmp_path):
    con = store.connect(tmp_path / "maya.duckdb")
    rng = np.random.default_rng(0)
    vectors = {}
    for start in range(0, 60, 10):  # two models' rows interleaved in blocks of rowids
        for model, dim in (("m-a", 5), ("m-b", 3)):
            shas = [f"{model}-{k:060d}" for k in range(start, start + 10)]
            v = rng.normal(size=(10, dim)).astype(np.float32)
            store.insert_embeddings(con, shas, model, v)
            vectors.update({(model, s): row for s, row in zip(shas, v)})
    con.execute("DELETE FROM embeddings WHERE model = 'm-a' AND sha256 LIKE '%7'")  # gaps in the rowids
    yield con, {k: v for k, v in vectors.items() if not (k[0] == "m-a" and k[1].endswith("7"))}
    con.close()


@pytest.mark.parametrize("chunk", [1, 4, 256])
def test_vector_rows_gives_each_row_of_the_model_once_in_rowid_order(con, chunk):
    con, vectors = con
    want = con.execute("SELECT rowid, sha256 FROM embeddings WHERE model = 'm-a' ORDER BY rowid").fetchall()
    got = [(r, s, v) for rows, shas, vecs in index_store.vector_rows(con, "m-a", -1, 10**9, chunk=chunk)
           for r, s, v in zip(rows.tolist(), shas, vecs)]
    assert [(r, s) for r, s, _ in got] == want and len(want) == 54
    assert all(np.array_equal(v, vectors[("m-a", s)]) for _, s, v in got)
    middle = want[20][0], want[40][0]  # a window: after the first, up to and with the second
    inside = [r for rows, *_ in index_store.vector_rows(con, "m-a", *middle, chunk=chunk) for r in rows.tolist()]
    assert inside == [r for r, _ in want[21:41]]


@pytest.mark.parametrize("chunk", [3, None])
def test_embedding_matrix_is_in_the_asked_order_with_zeros_for_the_missing(con, chunk):
    con, vectors = con
    every = sorted(s for m, s in vectors if m == "m-a")[::-1]  # most of the model's rows: one pass in rowid order
    few = every[::20] + ["m-a-missing"]  # up to a chunk: one join
    for shas in (every, few):
        m = dedup_store.embedding_matrix(con, shas, "m-a", chunk=chunk)
        assert m.shape == (len(shas), 5)
        for s, row in zip(shas, m):
            assert np.array_equal(row, vectors.get(("m-a", s), np.zeros(5, np.float32)))
    assert dedup_store.embedding_matrix(con, [], "m-a").shape == (0, 5)
    assert dedup_store.embedding_matrix(con, every, "no-such-model").shape == (len(every), 0)


def test_rows_after_reads_the_rows_added_since_a_stamp(con):
    con, vectors = con
    n, top = index_store.table_stamp(con, "embeddings", "m-b")
    shas, values = index_store.rows_after(con, "embeddings", "m-b", -1, top)
    assert len(shas) == n == 60 and values.shape == (60, 3)
    store.insert_embeddings(con, ["m-b-new"], "m-b", np.ones((1, 3), np.float32))
    _, now = index_store.table_stamp(con, "embeddings", "m-b")
    shas, values = index_store.rows_after(con, "embeddings", "m-b", top, now)
    assert shas.tolist() == [b"m-b-new"] and np.array_equal(values, np.ones((1, 3), np.float32))
