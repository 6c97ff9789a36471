"""Index files of a collection: what DuckDB holds, laid out as arrays for search, kept current cheaply.

One file per part, ``<data dir>/index/hashes-<algorithm>.npz`` and ``embeddings-<model>.npz``, each holding

* ``sha256``: (N,) ``S64`` ASCII hex digests of the contents, in table row order;
* ``values``: (N,) uint64 pHash bits, or (N, d) float32 unit embeddings;
* ``stamp``: int64 (2,) = (rows, max rowid) of the table rows (``hashes`` of the algorithm, ``embeddings``
  of the model) the file was made from.

:func:`refresh` compares the stamp with the table: equal, the file is used as is; rows were only added
since (rowids above the stamp's, and the counts add up), only those rows are read and appended (a rerun of
dedup over a grown folder costs O(new rows) of DuckDB reads); anything else (no file, an unreadable one,
a table that lost or replaced rows), the part is rebuilt from the table. Files are replaced atomically.
The index covers every content of the store with that feature; which paths a content has is asked of
the ``files`` table at query time (only for the matches).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maya.index.damaged import DAMAGED

#: Layout version of the files; a file of another version is rebuilt.
INDEX_VERSION = 1


@dataclass
class IndexPart:
    """One part of the index, loaded. ``how``: what :func:`refresh` did: ``"fresh"`` (file used as is),
    ``"appended"`` (``added`` new rows appended), ``"rebuilt"`` (read whole from DuckDB)."""

    kind: str  # "hashes" | "embeddings"
    key: str  # hash algorithm or model id
    sha256: np.ndarray  # S64 (N,)
    values: np.ndarray  # uint64 (N,) or float32 (N, d)
    stamp: tuple[int, int]
    how: str = "fresh"
    added: int = 0

    def __len__(self) -> int:
        return int(self.sha256.shape[0])

    def shas(self, positions) -> list[str]:
        """The sha256 (str) at ``positions``."""
        return [s.decode("ascii") for s in self.sha256[np.asarray(positions, dtype=np.int64)]]


def positions(sorted_shas: np.ndarray, order: np.ndarray, shas: np.ndarray) -> np.ndarray:
    """Positions of ``shas`` (S64) in a sha256 column whose sorted values are ``sorted_shas`` (``order`` = its
    argsort), -1 where absent."""
    if sorted_shas.size == 0 or shas.size == 0:
        return np.full(shas.size, -1, np.int64)
    at = np.minimum(np.searchsorted(sorted_shas, shas), sorted_shas.size - 1)
    return np.where(sorted_shas[at] == shas, order[at], -1).astype(np.int64)


def index_dir(db_path: str | os.PathLike) -> Path:
    """Where the index of the store ``db_path`` lives: ``index/`` next to the database file."""
    return Path(os.fspath(db_path)).resolve().parent / "index"


def part_path(folder: str | os.PathLike, kind: str, key: str) -> Path:
    """The file of one part: a readable name plus a short digest of ``key`` (model ids hold '/', ':')."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:60]
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:10]
    return Path(folder) / f"{kind}-{readable}-{digest}.npz"


def _load_file(path: Path, kind: str, key: str) -> IndexPart | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != INDEX_VERSION or str(z["key"]) != key:
                return None
            stamp = tuple(int(x) for x in z["stamp"])
            part = IndexPart(kind, key, z["sha256"], z["values"], stamp)
    except DAMAGED:
        return None  # missing or damaged (a truncated file is a bad zip): rebuilt from the store
    if part.sha256.shape[0] != part.values.shape[0] or part.stamp[0] != part.sha256.shape[0]:
        return None
    return part


def _save_file(path: Path, part: IndexPart) -> None:
    from maya.io.atomic import atomic_file

    with atomic_file(path) as f:  # written straight into the file: no second copy of the part in memory
        np.savez(f, version=np.int64(INDEX_VERSION), key=np.array(part.key), sha256=part.sha256,
                 values=part.values, stamp=np.array(part.stamp, dtype=np.int64))


def refresh(con, folder: str | os.PathLike | None, kind: str, key: str, *, write: bool = True) -> IndexPart:
    """The part ``kind`` ("hashes" or "embeddings") of ``key``, current with the store ``con``.

    ``folder``: the index folder (:func:`index_dir`); None: built in memory, nothing written. ``write``:
    save the part when it changed (False for a read-only caller). See the module docstring for the rules.
    """
    from maya.store import index as index_store

    if kind not in index_store.TABLES:
        raise ValueError(f"unknown index part {kind!r}")
    now = index_store.table_stamp(con, kind, key)
    path = part_path(folder, kind, key) if folder is not None else None
    old = _load_file(path, kind, key) if path is not None and path.exists() else None
    if old is not None and old.stamp == now:
        return old
    part = None
    if old is not None and old.stamp[1] <= now[1]:
        shas, values = index_store.rows_after(con, kind, key, old.stamp[1], now[1])
        if old.stamp[0] + len(shas) == now[0] and (kind == "hashes" or values.shape[1:] == old.values.shape[1:]):
            part = IndexPart(kind, key, np.concatenate([old.sha256, shas]), np.concatenate([old.values, values]),
                             now, "appended", len(shas))
    if part is None:
        shas, values = index_store.rows_after(con, kind, key, -1, now[1])
        part = IndexPart(kind, key, shas, values, (len(shas), now[1]), "rebuilt", len(shas))
    if path is not None and write:
        try:
            _save_file(path, part)
        except OSError:  # a read-only data folder: the part is still right, only not kept for next time
            part.how += " (not saved)"
    return part


def update_after_dedup(con, db_path, hash_algorithm: str | None, model_id: str | None) -> dict:
    """The hook dedup calls after writing its features: bring this store's index parts up to date.

    Returns ``{kind: how}`` (for the run's log). Failing to write an index file (a read-only data folder)
    never fails the run (:func:`refresh` keeps going): the index is derived and is rebuilt by the next search.
    """
    out = {}
    folder = index_dir(db_path)
    for kind, key in (("hashes", hash_algorithm), ("embeddings", model_id)):
        if key is None:
            continue
        part = refresh(con, folder, kind, key)
        out[kind] = f"{part.how} (+{part.added})" if part.how != "fresh" else "fresh"
        if kind == "embeddings":
            from maya.index import ann_file

            kept = ann_file.append_if_kept(part, part_path(folder, "ann", key))
            if kept is not None:
                out["neighbours"] = kept
    return out
