"""The DuckDB store: one file, schema applied idempotently, bulk reads and writes as numpy columns.

Only the flow's own process writes; workers return results (see DESIGN.md). Each batch is written in one
transaction, so an interrupted run loses at most the batch in flight.
"""

from __future__ import annotations

from maya.errors import MayaError

import json
import os
import re
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import duckdb
import numpy as np

#: The schema and queries are package data of ``maya.sql`` (the repository's ``sql/`` folder).
SQL_FILES = files("maya.sql")
SCHEMA_FILE = "schema.sql"


class StoreLockedError(MayaError, RuntimeError):
    """Another process holds the database file's write lock."""


class StoreError(MayaError, RuntimeError):
    """The database file cannot be opened (not a DuckDB file, unreadable folder, ...)."""


def _lock_message(db_path: Path, exc: Exception) -> str:
    text = str(exc)
    m = re.search(r"PID (\d+)", text)
    holder = f"process {m.group(1)}" if m else "another process"
    return (
        f"the database {db_path} is in use by {holder}; DuckDB allows one writer at a time. "
        f"Wait for that run to finish (or stop it), or use another --data-dir."
    )


def connect(db_path: str | Path, *, read_only: bool = False, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the store and apply the schema. Raises StoreLockedError / StoreError.

    ``config``: DuckDB settings for this connection (``maya sql`` turns file access off with it)."""
    db_path = Path(db_path)
    if read_only and not db_path.exists():
        raise StoreError(f"no database at {db_path}: run `maya demo` or `maya pairs build` first")
    if not read_only:
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the data folder {db_path.parent}: {e.strerror or e}") from None
    try:
        con = duckdb.connect(str(db_path), read_only=read_only, config=config or {})
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise StoreLockedError(_lock_message(db_path, e)) from None
        raise StoreError(f"cannot open the database {db_path}: {e}") from None
    except duckdb.Error as e:
        raise StoreError(f"cannot open the database {db_path}: {e}") from None
    if not read_only:
        apply_schema(con)
    return con


def apply_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Run sql/schema.sql, then every other sql/*.sql (views, feature tables) in name order."""
    con.execute(SQL_FILES.joinpath(SCHEMA_FILE).read_text())
    extras = sorted(f.name for f in SQL_FILES.iterdir() if f.name.endswith(".sql") and f.name != SCHEMA_FILE)
    for name in extras:
        con.execute(SQL_FILES.joinpath(name).read_text())


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection):
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")


def drop_cache(con: duckdb.DuckDBPyConnection) -> None:
    """Let DuckDB give back the table pages it holds in memory; they are read from the file again when needed.

    DuckDB keeps every page it has written or read until its memory limit (80 % of RAM by default), so a dedup
    that writes each image's features once and reads them back once held all of them: ~100 MiB of a 3,000-file
    run (``benchmarks/bench_vs_fastdup.py --photos 3000 --side 2000``). Lowering the limit for a moment evicts
    those pages (no query runs under the low limit), and the limit is then reset to DuckDB's default. Called by
    the long writers and readers between their chunks (``maya.features``, ``maya.dedup.candidates``). Raises
    nothing: a connection that cannot do it keeps its cache."""
    with _memory_limit(con, _DROP_LIMIT):
        pass


@contextmanager
def _memory_limit(con: duckdb.DuckDBPyConnection, limit: str):
    """DuckDB's memory limit lowered to ``limit`` inside the block (what does not fit is evicted as it is set),
    DuckDB's default again after it. Setting or resetting the limit never raises: a connection that refuses it
    runs the block under its own limit."""
    try:
        con.execute(f"SET memory_limit = '{limit}'")
    except duckdb.Error:
        pass
    try:
        yield
    finally:
        try:
            con.execute("RESET memory_limit")
        except duckdb.Error:
            pass


_DROP_LIMIT = "8MB"


def wal_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """Size of the store's write-ahead log (0 for an in-memory database or when it cannot be told)."""
    try:
        row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
        return os.path.getsize(f"{row[0]}.wal") if row and row[0] else 0
    except (duckdb.Error, OSError):
        return 0


def checkpoint(con: duckdb.DuckDBPyConnection) -> None:
    """Write the log into the database file, with DuckDB's memory for it bounded.

    A checkpoint of a BLOB column (the grid thumbnails) held about twice the column's new data in memory under
    DuckDB's default limit (80 % of RAM): +70 MiB for 3,000 thumbnails, +230 MiB for 12,000, whenever a commit
    took the log past 16 MiB. Under a limit of :data:`_CHECKPOINT_LIMIT` the same checkpoint stays within it
    (measured: +35 MiB for 12,000) at the same speed. Should the limit be too small for it, the checkpoint is
    made again under the default. Raises nothing: a checkpoint that cannot be made now (another writer) is
    made by a later commit or at close, and the log keeps every row meanwhile."""
    try:
        try:
            with _memory_limit(con, _CHECKPOINT_LIMIT):
                con.execute("CHECKPOINT")
        except duckdb.OutOfMemoryException:
            con.execute("CHECKPOINT")  # under the default limit again
    except duckdb.Error:
        pass


_CHECKPOINT_LIMIT = "32MB"
#: Log size at which the long writers checkpoint themselves (below DuckDB's own 16 MiB, so theirs is bounded).
CHECKPOINT_WAL = 8 * 2**20


def _column(values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    values = list(values)
    if any(isinstance(v, (dict, list)) for v in values):
        values = [None if v is None else json.dumps(v, sort_keys=True) for v in values]
    if all(isinstance(v, bool) for v in values) and values:
        return np.array(values, dtype=bool)
    return np.array(values, dtype=object)


def insert_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Mapping[str, Sequence | np.ndarray],
    *,
    ignore_conflicts: bool = False,
) -> int:
    """Insert equally long columns into ``table`` in one statement. NaN and None become NULL.

    Returns the number of rows offered. With ``ignore_conflicts``, rows whose primary key exists are skipped.
    """
    cols = {name: _column(v) for name, v in columns.items()}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of unequal length for {table}: {lengths}")
    n = lengths.pop() if lengths else 0
    if n == 0:
        return 0
    _maya_rows = cols  # noqa: F841  (read by DuckDB's replacement scan below)
    names = ", ".join(cols)
    verb = "INSERT OR IGNORE INTO" if ignore_conflicts else "INSERT INTO"
    con.execute(f"{verb} {table} ({names}) SELECT {names} FROM _maya_rows")
    return n


def insert_embeddings(con, sha256s: Sequence[str], model: str, vectors: np.ndarray) -> int:
    """Store L2-normalised vectors (N, d) as FLOAT[] rows; existing (sha256, model) rows are kept."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    if n == 0:
        return 0
    _maya_flat = {  # noqa: F841
        "row": np.repeat(np.arange(n, dtype=np.int64), dim),
        "pos": np.tile(np.arange(dim, dtype=np.int32), n),
        "val": vectors.ravel(),
    }
    _maya_keys = {"row": np.arange(n, dtype=np.int64), "sha256": np.array(list(sha256s), dtype=object)}  # noqa: F841
    con.execute(
        """
        INSERT OR IGNORE INTO embeddings (sha256, model, dim, vector)
        SELECT k.sha256, ?, ?, f.v
        FROM _maya_keys k
        JOIN (SELECT row, list(val ORDER BY pos) AS v FROM _maya_flat GROUP BY row) f USING (row)
        """,
        [model, dim],
    )
    return n


def load_hashes(con, sha256s: Iterable[str], algorithm: str) -> dict[str, int]:
    _maya_q = {"sha256": np.array(sorted(set(sha256s)), dtype=object)}  # noqa: F841
    if len(_maya_q["sha256"]) == 0:
        return {}
    rows = con.execute(
        "SELECT h.sha256, h.bits FROM hashes h JOIN _maya_q q USING (sha256) WHERE h.algorithm = ?",
        [algorithm],
    ).fetchall()
    return {s: int(b) for s, b in rows}


def load_structure(con, sha256s: Iterable[str], algorithm: str) -> dict[str, tuple[float, str | None]]:
    """``sha256 -> (gray_std, pixel digest)`` of the stored hashes of ``algorithm`` (maya.hashing.structure)."""
    _maya_q = {"sha256": np.array(sorted(set(sha256s)), dtype=object)}  # noqa: F841
    if len(_maya_q["sha256"]) == 0:
        return {}
    rows = con.execute(
        "SELECT h.sha256, h.gray_std, h.pixels FROM hash_structure h JOIN _maya_q q USING (sha256) "
        "WHERE h.algorithm = ?", [algorithm],
    ).fetchall()
    return {s: (float(g), p) for s, g, p in rows}


def load_embeddings(con, sha256s: Iterable[str], model: str) -> dict[str, np.ndarray]:
    _maya_q = {"sha256": np.array(sorted(set(sha256s)), dtype=object)}  # noqa: F841
    if len(_maya_q["sha256"]) == 0:
        return {}
    got = con.execute(
        "SELECT e.sha256, e.vector FROM embeddings e JOIN _maya_q q USING (sha256) WHERE e.model = ?",
        [model],
    ).fetchnumpy()
    return {s: np.asarray(v, dtype=np.float32) for s, v in zip(got["sha256"], got["vector"])}


def code_version() -> str:
    """The package version plus the git commit of the checkout, when there is one."""
    import subprocess

    from maya import __version__

    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5,
        )
        sha = out.stdout.strip()
        if out.returncode == 0 and sha:
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=5,
            ).stdout.strip()
            return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


# ----------------------------------------------------------------------------------------------
# Writers and readers used by the flows (the flow's process is the only writer).


def dataset_info(con, name: str) -> dict | None:
    row = con.execute(
        "SELECT name, origin, source, seed, params, (SELECT count(*) FROM pairs WHERE dataset = ?) "
        "FROM datasets WHERE name = ?",
        [name, name],
    ).fetchone()
    if row is None:
        return None
    return {"name": row[0], "origin": row[1], "source": row[2], "seed": row[3],
            "params": json.loads(row[4]) if row[4] else None, "pairs": row[5]}


def dataset_names(con) -> list[str]:
    """Names of the stored datasets, sorted."""
    return [r[0] for r in con.execute("SELECT name FROM datasets ORDER BY name").fetchall()]


def run_of_flow_run(con, flow_run_id: str) -> dict | None:
    """The Maya run a Prefect flow run wrote (its counts), or None when there is none."""
    cur = con.execute(
        "SELECT run_id, status, hashes_computed, hashes_reused, embeddings_computed, embeddings_reused, "
        "images_failed FROM runs WHERE flow_run_id = ?", [str(flow_run_id)])
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row))


def save_files(con, files) -> None:
    """Upsert file rows (path -> sha256); a later sighting replaces the earlier row.

    Paths must be valid UTF-8 already, written losslessly (:func:`maya.io.pathtext.path_text`: the walker's and the pair
    builder's writers convert them), so the store does not depend on the walker.
    """
    if not files:
        return
    cols = {
        "path": [f.path for f in files],
        "sha256": [f.sha256 for f in files],
        "size_bytes": [f.size_bytes for f in files],
        "mtime": np.array([np.nan if f.mtime is None else f.mtime for f in files], dtype=np.float64),
        "status": [f.status for f in files],
        "error": [f.error for f in files],
    }
    # last sighting of a path wins
    _maya_files = {k: _column(v) for k, v in cols.items()}  # noqa: F841
    con.execute(
        "INSERT OR REPLACE INTO files (path, sha256, size_bytes, mtime, status, error) "
        "SELECT path, sha256, size_bytes, mtime, status, error FROM "
        "(SELECT *, row_number() OVER (PARTITION BY path ORDER BY rowid DESC) AS rn FROM "
        "(SELECT *, row_number() OVER () AS rowid FROM _maya_files)) WHERE rn = 1"
    )


def read_pairs(con, dataset: str) -> dict[str, np.ndarray]:
    return con.execute(
        "SELECT pair_id, a, b, label, kind, split FROM pairs WHERE dataset = ? ORDER BY pair_id", [dataset]
    ).fetchnumpy()


def image_paths(con, sha256s) -> dict[str, str]:
    """A readable path for each sha256 (the most recently seen file with that content)."""
    _maya_q = {"sha256": np.array(sorted(set(sha256s)), dtype=object)}  # noqa: F841
    if len(_maya_q["sha256"]) == 0:
        return {}
    rows = con.execute(
        "SELECT sha256, arg_max(path, seen_at) FROM files JOIN _maya_q USING (sha256) "
        "WHERE status = 'ok' GROUP BY sha256"
    ).fetchall()
    from maya.io.pathtext import text_path

    return {sha: text_path(path) for sha, path in rows}


def failed_images(con, sha256s) -> dict[str, str]:
    _maya_q = {"sha256": np.array(sorted(set(sha256s)), dtype=object)}  # noqa: F841
    if len(_maya_q["sha256"]) == 0:
        return {}
    return dict(con.execute(
        "SELECT sha256, error FROM images JOIN _maya_q USING (sha256) WHERE status = 'error'"
    ).fetchall())


def save_features(con, records, hash_algorithm: str, hashes: tuple, model: str | None, embeddings: tuple,
                  structure: tuple | None = None) -> None:
    """Image rows, pHash bits and embeddings of finished feature batches, in the caller's transaction
    (``maya.features`` writes them with the batches' dihedral hashes and grid thumbnails in one).
    ``structure``: (sha256s, gray_std (n,), pixel digests (n,)) for ``hash_structure``
    (maya.hashing.structure), for the hashes computed with it."""
    if records:
        _upsert_images(con, records)
    shas, bits = hashes
    if len(shas):
        insert_rows(con, "hashes", {
            "sha256": list(shas), "algorithm": [hash_algorithm] * len(shas),
            "bits": np.asarray(bits, dtype=np.uint64),
        }, ignore_conflicts=True)
    if structure is not None and len(structure[0]):
        s_shas, std, pixels = structure
        insert_rows(con, "hash_structure", {
            "sha256": list(s_shas), "algorithm": [hash_algorithm] * len(s_shas),
            "gray_std": np.asarray(std, dtype=np.float64), "pixels": list(pixels),
        }, ignore_conflicts=True)
    eshas, vecs = embeddings
    if model is not None and len(eshas):
        insert_embeddings(con, eshas, model, vecs)


def _upsert_images(con, records) -> None:
    cols = {
        "sha256": [r.sha256 for r in records],
        "size_bytes": [r.size_bytes for r in records],
        "width": [r.width for r in records],
        "height": [r.height for r in records],
        "format": [r.format for r in records],
        "status": [r.status for r in records],
        "error": [r.error for r in records],
    }
    _maya_img = {k: _column(v) for k, v in cols.items()}  # noqa: F841
    # A success replaces an earlier failure (the file may have been fixed); keep first_seen.
    con.execute(
        """
        INSERT INTO images (sha256, size_bytes, width, height, format, status, error)
        SELECT sha256, size_bytes::BIGINT, width::INTEGER, height::INTEGER, format, status, error FROM _maya_img
        ON CONFLICT (sha256) DO UPDATE SET size_bytes = excluded.size_bytes, width = excluded.width,
            height = excluded.height, format = excluded.format, status = excluded.status, error = excluded.error
        """
    )


def start_run(con, *, flow: str, dataset: str | None, model: str | None, parameters: dict,
              flow_run_id: str | None = None) -> int:
    """Add a ``runs`` row (status 'running') and return its id.

    Earlier runs of the same flow still marked 'running' are marked 'interrupted' first: flows of one kind
    run one at a time against a store (DuckDB has one writer; deployments have concurrency 1), so such a
    row belongs to a process that was killed. Their finished batches stay; the next run computes the rest.
    """
    con.execute("UPDATE runs SET status = 'interrupted' WHERE flow = ? AND status = 'running'", [flow])
    return con.execute(
        "INSERT INTO runs (flow, dataset, model, parameters, code_version, status, flow_run_id) "
        "VALUES (?, ?, ?, ?, ?, 'running', ?) RETURNING run_id",
        [flow, dataset, model, json.dumps(parameters, sort_keys=True, default=str), code_version(), flow_run_id],
    ).fetchone()[0]


def finish_run(con, run_id: int, *, status: str, counts: dict | None = None) -> None:
    counts = counts or {}
    con.execute(
        "UPDATE runs SET finished_at = current_timestamp, status = ?, hashes_computed = ?, hashes_reused = ?, "
        "embeddings_computed = ?, embeddings_reused = ?, images_failed = ? WHERE run_id = ?",
        [status, counts.get("hashes_computed"), counts.get("hashes_reused"), counts.get("embeddings_computed"),
         counts.get("embeddings_reused"), counts.get("images_failed"), run_id],
    )


#: Writers of the study's rows, in :mod:`maya.store.study`; reachable here as before (``store.save_pairset``).
_STUDY_WRITERS = ("save_pairset", "save_scores_and_metrics")


def __getattr__(name):
    if name in _STUDY_WRITERS:
        from maya.store import study

        return getattr(study, name)
    raise AttributeError(f"module 'maya.store' has no attribute {name!r}")
