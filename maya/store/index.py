"""The reads behind the collection index (``maya.index``): stamps of feature tables, rows added since a
stamp, and the paths and features of the few contents a search matched. Lists of sha256 are joined as
registered numpy columns, never spliced into SQL. Nothing here writes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from maya import store

#: Index part kind -> (table, key column). The key is a hash algorithm or a model id.
TABLES = {"hashes": ("hashes", "algorithm"), "embeddings": ("embeddings", "model")}


def table_stamp(con, kind: str, key: str) -> tuple[int, int]:
    """(rows, max rowid) of the rows of ``key`` in the table of ``kind`` (-1 when there are none)."""
    table, col = TABLES[kind]
    n, top = con.execute(f"SELECT count(*), coalesce(max(rowid), -1) FROM {table} WHERE {col} = ?", [key]).fetchone()
    return int(n), int(top)


def rows_after(con, kind: str, key: str, after_rowid: int, upto_rowid: int, *,
               chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sha256 ``S64`` (n,), values) of the rows of ``key`` with ``after_rowid`` < rowid <= ``upto_rowid``, in
    rowid order (the upper bound: rows a writer adds meanwhile wait for the next stamp).

    values: uint64 (n,) pHash bits, or float32 (n, d) vectors (:func:`vector_rows`, ``chunk`` rowids at a time)."""
    table, col = TABLES[kind]
    if kind == "hashes":
        got = con.execute(f"SELECT sha256, bits FROM {table} WHERE {col} = ? AND rowid > ? AND rowid <= ? ORDER BY rowid",
                          [key, after_rowid, upto_rowid]).fetchnumpy()
        return np.asarray(got["sha256"], dtype="S64"), np.asarray(got["bits"], dtype=np.uint64)
    n, dim = con.execute(f"SELECT count(*), max(dim) FROM {table} WHERE {col} = ? AND rowid > ? AND rowid <= ?",
                         [key, after_rowid, upto_rowid]).fetchone()
    shas = np.zeros(int(n), "S64")
    vecs = np.zeros((int(n), int(dim or 0)), np.float32)
    at = 0
    for _, sha, vectors in vector_rows(con, key, after_rowid, upto_rowid, chunk=chunk):
        k = min(len(sha), int(n) - at)  # rows a writer added meanwhile wait for the next stamp
        shas[at:at + k] = np.asarray(sha[:k], dtype="S64")
        for j in range(k):  # row by row: no second copy of the chunk
            vecs[at + j] = vectors[j]
        at += k
    return shas[:at], vecs[:at]


#: Bytes of vectors per query of :func:`vector_rows`. DuckDB's transient memory for a read of list vectors grows
#: with the rows a query returns (a 3,000-photo dedup, 1,280 floats a row: peak 262-267 MiB at 256 rows a query,
#: 267-272 at 512, 277-281 at 1,024), while each query costs a scan's start (100k rows of 512 floats: 4.5 s at 256
#: rows a query, 2.3-2.7 s at 512, 1.7-2.1 s at 1,024; the join it replaced for dedup's reads took 22.7 s).
VECTOR_BYTES = 1 << 20


def vector_chunk(dim: int) -> int:
    """Rows of ``dim`` floats per query of :func:`vector_rows`: about :data:`VECTOR_BYTES` of vectors."""
    return max(64, VECTOR_BYTES // max(1, 4 * int(dim or 1)))


def vector_rows(con, model: str, after_rowid: int, upto_rowid: int, *, chunk: int | None = None):
    """The ``embeddings`` rows of ``model`` with ``after_rowid`` < rowid <= ``upto_rowid``, in rowid order, ``chunk``
    rows (default: :func:`vector_chunk` of the model's dimension) at a time: yields ``(rowid int64 (k,), sha256
    object (k,), vectors object (k,) of float32 arrays)``.

    The rowids are read first, then each chunk as a range of them: not ``ORDER BY rowid LIMIT`` (which reads every
    vector after the last row for each chunk). DuckDB's cache of the pages read is dropped after each
    (:func:`maya.store.drop_cache`)."""
    if not chunk:
        dim = con.execute("SELECT max(dim) FROM embeddings WHERE model = ?", [model]).fetchone()[0]
        chunk = vector_chunk(dim or 1)
    chunk = max(1, int(chunk))
    rowids = con.execute("SELECT rowid AS r FROM embeddings WHERE model = ? AND rowid > ? AND rowid <= ? "
                         "ORDER BY rowid", [model, int(after_rowid), int(upto_rowid)]).fetchnumpy()["r"]
    rowids = np.asarray(rowids, dtype=np.int64)
    for start in range(0, rowids.size, chunk):
        lo, hi = int(rowids[start]), int(rowids[min(start + chunk, rowids.size) - 1])
        got = con.execute("SELECT rowid AS r, sha256, vector FROM embeddings WHERE model = ? AND rowid >= ? "
                          "AND rowid <= ? ORDER BY rowid", [model, lo, hi]).fetchnumpy()
        if len(got["r"]):
            yield np.asarray(got["r"], np.int64), got["sha256"], got["vector"]
        del got
        store.drop_cache(con)


def file_paths(con, sha256s: Sequence[str]) -> dict[str, list[str]]:
    """Every readable path (``files.status = 'ok'``) of each content, sorted; contents without one are absent."""
    _maya_q = {"sha256": np.array(sorted(set(sha256s)), dtype=object)}  # noqa: F841
    if len(_maya_q["sha256"]) == 0:
        return {}
    out: dict[str, list[str]] = {}
    for sha, path in con.execute("SELECT sha256, path FROM files JOIN _maya_q USING (sha256) "
                                 "WHERE status = 'ok' ORDER BY sha256, path").fetchall():
        out.setdefault(sha, []).append(path)
    return out


def all_file_paths(con) -> tuple[np.ndarray, np.ndarray]:
    """Every readable path of every content at once, for a caller that resolves many matches: ``(sha256
    S64 (M,), path object (M,))`` sorted by (sha256, path). One scan of ``files``; a lookup in it is then a
    binary search (:func:`paths_in`), where :func:`file_paths` scans the table once per call."""
    got = con.execute("SELECT sha256, path FROM files WHERE status = 'ok' AND sha256 IS NOT NULL "
                      "ORDER BY sha256, path").fetchnumpy()
    return np.asarray(got["sha256"], dtype="S64"), np.asarray(got["path"], dtype=object)


def paths_in(table: tuple[np.ndarray, np.ndarray], sha256s: Sequence[str]) -> dict[str, list[str]]:
    """:func:`file_paths` answered from an :func:`all_file_paths` table."""
    shas, paths = table
    keys = np.array(sorted(set(sha256s)), dtype="S64")
    lo, hi = np.searchsorted(shas, keys, "left"), np.searchsorted(shas, keys, "right")
    return {k.decode("ascii"): paths[a:b].tolist() for k, a, b in zip(keys, lo, hi) if b > a}
