"""The user's SQL on the store (``maya sql``): the named queries shipped in ``sql/queries/*.sql``
(package data of ``maya.sql``) and running one statement, with a failure as one line.

The store is opened read-only and, unless ``--allow-files``, with DuckDB's external access off
(:data:`NO_FILES`: no ``COPY ... TO``, no ``read_csv``/``read_text`` of other files, no ``ATTACH``,
no extensions), locked so a query cannot turn it back on: a query reads the store and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

import duckdb

from maya.errors import MayaUsageError


#: DuckDB settings of ``maya sql`` without ``--allow-files``.
NO_FILES = {"enable_external_access": False, "lock_configuration": True}


def open_for_queries(db_path, *, allow_files: bool = False):
    """The store, read-only; file access off unless ``allow_files``."""
    from maya import store

    return store.connect(db_path, read_only=True, config=None if allow_files else dict(NO_FILES))


class QueryError(MayaUsageError):
    """The query does not run on this store (syntax, unknown table, ...): exit 2, its first line."""


@dataclass(frozen=True)
class QueryResult:
    """What a statement returned: column names and rows (tuples of Python values)."""

    columns: list[str]
    rows: list[tuple]


def named_query(name: str) -> str | None:
    """The text of ``sql/queries/<name>.sql`` when ``name`` is one (a single word), else None."""
    if " " in name.strip() or "/" in name:
        return None
    named = files("maya.sql").joinpath("queries", f"{name}.sql")
    return named.read_text() if named.is_file() else None


def run_query(con, query: str) -> QueryResult | None:
    """Run ``query`` on ``con``; None for a statement that returns no result set."""
    try:
        cur = con.execute(query)
    except duckdb.Error as e:
        hint = ""
        if isinstance(e, duckdb.PermissionException):
            hint = " (maya sql reads only the store: --allow-files lets a query read and write other files)"
        raise QueryError(f"query failed: {str(e).splitlines()[0]}{hint}") from None
    if cur.description is None:
        return None
    return QueryResult([d[0] for d in cur.description], cur.fetchall())
