"""The ``grid_thumbs`` table: the grey thumbnail of each content (``sql/grid_thumbs.sql``, ``maya.hashing.grid``).

A content's thumbnail is a uint8 (side, side) array in Python, a BLOB of its bytes in DuckDB. Cached by content
like every feature.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from maya.store import insert_rows


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
        "pixels": np.array([t.tobytes() for t in thumbs], dtype=object),
    }, ignore_conflicts=True)
    return len(sha256s)


def load_thumbs(con, sha256s: Iterable[str], algorithm: str) -> dict[str, np.ndarray]:
    """sha256 -> uint8 (side, side) for the contents that have a thumbnail stored."""
    _maya_q = {"sha256": np.array(sorted(set(sha256s)), dtype=object)}  # noqa: F841
    if len(_maya_q["sha256"]) == 0:
        return {}
    rows = con.execute("SELECT g.sha256, g.side, g.pixels FROM grid_thumbs g JOIN _maya_q q USING (sha256) "
                       "WHERE g.algorithm = ?", [algorithm]).fetchall()
    return {s: np.frombuffer(bytes(p), dtype=np.uint8).reshape(side, side) for s, side, p in rows}


def stored(con, sha256s: Iterable[str], algorithm: str) -> set[str]:
    """The contents of ``sha256s`` that have a thumbnail of ``algorithm``."""
    _maya_q = {"sha256": np.array(sorted(set(sha256s)), dtype=object)}  # noqa: F841
    if len(_maya_q["sha256"]) == 0:
        return set()
    return {s for (s,) in con.execute("SELECT g.sha256 FROM grid_thumbs g JOIN _maya_q q USING (sha256) "
                                      "WHERE g.algorithm = ?", [algorithm]).fetchall()}
