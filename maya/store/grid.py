"""The ``grid_thumbs`` table: the grey thumbnail of each content (``sql/grid_thumbs.sql``, ``maya.hashing.grid``).

A content's thumbnail is a uint8 (side, side) array in Python and a BLOB in DuckDB: its rows as differences
from the pixel to their left (mod 256), deflated (zlib, level 1), which takes a photo's 9,216 bytes to ~5,800
(0.12 ms to write, 0.06 ms to read). A BLOB of exactly side * side bytes holds the pixels as they are (rows of
earlier stores, and any thumbnail that deflating would not shrink). DuckDB holds a table's new pages in memory until
a checkpoint, and a checkpoint of a BLOB column costs about twice its data: fewer bytes, less memory. Cached by
content like every feature.
"""

from __future__ import annotations

import zlib
from typing import Iterable, Sequence

import numpy as np

from maya.store import insert_rows


def encode(thumb: np.ndarray) -> bytes:
    """The stored bytes of one uint8 (side, side) thumbnail (see the module docstring)."""
    thumb = np.ascontiguousarray(thumb, dtype=np.uint8)
    packed = zlib.compress(np.diff(thumb, axis=1, prepend=np.uint8(0)).tobytes(), 1)
    return packed if len(packed) < thumb.size else thumb.tobytes()


def decode(data: bytes, side: int) -> np.ndarray:
    """The uint8 (side, side) thumbnail of stored ``data``."""
    if len(data) == side * side:
        return np.frombuffer(data, dtype=np.uint8).reshape(side, side)
    deltas = np.frombuffer(zlib.decompress(data), dtype=np.uint8).reshape(side, side)
    return np.cumsum(deltas, axis=1, dtype=np.uint8)


def save_thumbs(con, sha256s: Sequence[str], algorithm: str, thumbs: np.ndarray) -> int:
    """Store ``thumbs`` (N, side, side) uint8 for ``sha256s`` (existing rows are kept). Returns the contents offered."""
    thumbs = np.asarray(thumbs, dtype=np.uint8)
    if len(thumbs) != len(sha256s):
        raise ValueError(f"{len(sha256s)} contents but thumbnails of shape {thumbs.shape}")
    if not len(sha256s):
        return 0
    insert_rows(con, "grid_thumbs", {
        "sha256": np.asarray(list(sha256s), dtype=object),
        "algorithm": np.full(len(sha256s), algorithm, dtype=object),
        "side": np.full(len(sha256s), thumbs.shape[1], dtype=np.int32),
        "pixels": np.array([encode(t) for t in thumbs], dtype=object),
    }, ignore_conflicts=True)
    return len(sha256s)


def load_thumbs(con, sha256s: Iterable[str], algorithm: str) -> dict[str, np.ndarray]:
    """sha256 -> uint8 (side, side) for the contents that have a thumbnail stored."""
    _maya_q = {"sha256": np.array(sorted(set(sha256s)), dtype=object)}  # noqa: F841
    if len(_maya_q["sha256"]) == 0:
        return {}
    rows = con.execute("SELECT g.sha256, g.side, g.pixels FROM grid_thumbs g JOIN _maya_q q USING (sha256) "
                       "WHERE g.algorithm = ?", [algorithm]).fetchall()
    return {s: decode(bytes(p), side) for s, side, p in rows}


def stored(con, sha256s: Iterable[str], algorithm: str) -> set[str]:
    """The contents of ``sha256s`` that have a thumbnail of ``algorithm``."""
    _maya_q = {"sha256": np.array(sorted(set(sha256s)), dtype=object)}  # noqa: F841
    if len(_maya_q["sha256"]) == 0:
        return set()
    return {s for (s,) in con.execute("SELECT g.sha256 FROM grid_thumbs g JOIN _maya_q q USING (sha256) "
                                      "WHERE g.algorithm = ?", [algorithm]).fetchall()}
