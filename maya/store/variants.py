"""The ``hash_variants`` table: the 8 dihedral pHashes of each content (``sql/hash_variants.sql``).

Rows are (sha256, algorithm, variant 0..7, bits); in Python a content's variants are one uint64 (8,) row,
N contents an (N, 8) array (``maya.hashing.dihedral``). Cached by content like every feature.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from maya.store import insert_rows


def save_variants(con, sha256s: Sequence[str], algorithm: str, bits: np.ndarray) -> int:
    """Store ``bits`` (N, 8) uint64 for ``sha256s`` (existing rows are kept). Returns the contents offered."""
    bits = np.asarray(bits, dtype=np.uint64)
    n, k = bits.shape if bits.ndim == 2 else (0, 0)
    if n != len(sha256s):
        raise ValueError(f"{len(sha256s)} contents but variants of shape {bits.shape}")
    if n == 0:
        return 0
    insert_rows(con, "hash_variants", {
        "sha256": np.repeat(np.asarray(list(sha256s), dtype=object), k),
        "algorithm": np.full(n * k, algorithm, dtype=object),
        "variant": np.tile(np.arange(k, dtype=np.uint8), n),
        "bits": bits.reshape(-1),
    }, ignore_conflicts=True)
    return n


def load_variants(con, sha256s: Iterable[str], algorithm: str, n_variants: int = 8) -> dict[str, np.ndarray]:
    """sha256 -> uint64 (n_variants,) for the contents that have all their variants stored."""
    _maya_q = {"sha256": np.array(sorted(set(sha256s)), dtype=object)}  # noqa: F841
    if len(_maya_q["sha256"]) == 0:
        return {}
    rows = con.execute(
        "SELECT v.sha256, list(v.bits ORDER BY v.variant) FROM hash_variants v JOIN _maya_q q USING (sha256) "
        "WHERE v.algorithm = ? GROUP BY v.sha256 HAVING count(*) = ?",
        [algorithm, n_variants],
    ).fetchall()
    return {s: np.array(b, dtype=np.uint64) for s, b in rows}


def stored(con, sha256s: Iterable[str], algorithm: str, n_variants: int = 8) -> set[str]:
    """The contents of ``sha256s`` that have all their variants stored (what :func:`load_variants` would return,
    without reading the bits)."""
    _maya_q = {"sha256": np.array(sorted(set(sha256s)), dtype=object)}  # noqa: F841
    if len(_maya_q["sha256"]) == 0:
        return set()
    return {s for (s,) in con.execute(
        "SELECT v.sha256 FROM hash_variants v JOIN _maya_q q USING (sha256) WHERE v.algorithm = ? "
        "GROUP BY v.sha256 HAVING count(*) = ?", [algorithm, n_variants]).fetchall()}


def variant_matrix(con, sha256s: Sequence[str], algorithm: str, n_variants: int = 8) -> np.ndarray | None:
    """uint64 (n, n_variants): the variants of each of ``sha256s`` in order, read straight into one array; None
    unless every content has all its variants (the callers then use plain pHash only)."""
    shas = list(sha256s)
    if not shas:
        return None
    _maya_q = {"sha256": np.array(shas, dtype=object), "pos": np.arange(len(shas), dtype=np.int64)}  # noqa: F841
    got = con.execute("SELECT q.pos, v.variant, v.bits FROM hash_variants v JOIN _maya_q q USING (sha256) "
                      "WHERE v.algorithm = ? AND v.variant < ?", [algorithm, n_variants]).fetchnumpy()
    pos, variant = np.asarray(got["pos"], np.int64), np.asarray(got["variant"], np.int64)
    if pos.size != len(shas) * n_variants or np.bincount(pos, minlength=len(shas)).min() != n_variants:
        return None
    out = np.zeros((len(shas), n_variants), dtype=np.uint64)
    out[pos, variant] = np.asarray(got["bits"], dtype=np.uint64)
    return out
