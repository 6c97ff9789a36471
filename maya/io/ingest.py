"""Identify the files a walk found by the sha256 of their bytes, incrementally.

The walk itself (which files are images, hidden files, symbolic links, excludes) is
:mod:`maya.io.walk`; its names are re-exported here for the callers that read both.

Incremental identification (``plan_ingest`` then ``sha256_files``): a path whose size and mtime equal
what the ``files`` table holds keeps its stored sha256 and is not read; any other path is read and
hashed. Content that did not change keeps its features anyway (they are cached by sha256).

Paths are kept as the walk produced them; the database holds :func:`path_text` of a path.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

from maya.io.walk import (  # noqa: F401  (re-exported: callers read the walk and identity from here)
    IMAGE_EXTENSIONS,
    FileProblem,
    FoundFile,
    Walk,
    path_text,
    problem,
    problem_from_load_error,
    walk_images,
)

#: Files hashed per thread pool call and per database transaction.
DEFAULT_HASH_BATCH = 256


@dataclass(frozen=True)
class IngestedFile:
    """A file identified by content. ``reused``: its sha256 came from the database (not read)."""

    path: str
    sha256: str
    size_bytes: int
    mtime: float
    reused: bool


# ---------------------------------------------------------------------------------------------- identify


def plan_ingest(con, found: Sequence[FoundFile]) -> tuple[list[IngestedFile], list[FoundFile]]:
    """Split ``found`` into files whose stored sha256 still holds and files that must be read.

    A stored row holds when it is ``status = 'ok'`` with the same size and mtime. Reads one query.
    """
    import numpy as np

    if not found:
        return [], []
    _maya_q = {"path": np.array([path_text(f.path) for f in found], dtype=object)}  # noqa: F841
    rows = con.execute(
        "SELECT f.path, f.sha256, f.size_bytes, f.mtime FROM files f JOIN _maya_q q USING (path) "
        "WHERE f.status = 'ok' AND f.sha256 IS NOT NULL"
    ).fetchall()
    known = {p: (s, size, mtime) for p, s, size, mtime in rows}
    reused, to_read = [], []
    for f in found:
        row = known.get(path_text(f.path))
        if row is not None and row[1] == f.size_bytes and row[2] == f.mtime:
            reused.append(IngestedFile(f.path, row[0], f.size_bytes, f.mtime, True))
        else:
            to_read.append(f)
    return reused, to_read


#: Details of ``unreadable`` errors that will not go away by trying again.
_PERMANENT_UNREADABLE = ("permission denied", "symbolic link loop", "file name too long", "not a regular file")
#: Seconds to wait before each new try of a read that failed with an I/O error.
TRANSIENT_RETRY_DELAYS = (0.2, 1.0)


def is_transient(reason: str, error: str) -> bool:
    """True for a read failure worth trying again: ``unreadable`` from an I/O error (EIO, ESTALE,
    EAGAIN on a network mount), not from permissions, link loops or special files."""
    return reason == "unreadable" and not any(p in error for p in _PERMANENT_UNREADABLE)


def sha256_files(paths: Sequence[str], workers: int | None = None) -> list[tuple[str | None, FileProblem | None]]:
    """sha256 of each file, read in 1 MiB chunks by a thread pool: ``(sha256, None)`` or ``(None, problem)``.

    Results are in the order of ``paths``. Never raises for a bad file. A read that fails with an I/O
    error is tried again after each of :data:`TRANSIENT_RETRY_DELAYS`.
    """
    import time

    from maya.io import images as imageio

    def one(path: str):
        for delay in (*TRANSIENT_RETRY_DELAYS, None):
            try:
                return imageio.sha256_file(path), None
            except imageio.ImageLoadError as e:
                prob = problem_from_load_error(path, e)
                if delay is None or not is_transient(prob.reason, prob.error):
                    return None, prob
                time.sleep(delay)

    workers = workers or min(8, 2 * (os.cpu_count() or 1))
    if len(paths) <= 1:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(workers, len(paths))) as pool:
        return list(pool.map(one, paths))


@dataclass(frozen=True)
class _FileRow:  # the attributes maya.store.save_files reads
    path: str
    sha256: str | None
    size_bytes: int | None
    mtime: float | None
    status: str
    error: str | None


def save_identified(con, found: Sequence[FoundFile], results) -> None:
    """Write one batch of ``sha256_files`` results to the ``files`` table, in one transaction."""
    from maya import store

    rows = []
    for f, (sha, prob) in zip(found, results):
        if sha is not None:
            rows.append(_FileRow(path_text(f.path), sha, f.size_bytes, f.mtime, "ok", None))
        else:
            rows.append(_FileRow(path_text(f.path), None, f.size_bytes, f.mtime, "error", prob.error))
    with store.transaction(con):
        store.save_files(con, rows)
