"""The turned-pHash pairs of a collection, kept between dedup runs: a rerun over a grown folder searches only
what is new against the whole collection, not the collection against itself again.

The dihedral radius search (:func:`maya.hashing.dihedral.pairs_within`: mirrored and quarter-turned copies) is
the largest part of the candidate step on a rerun: 8 variants of every image against every plain hash. Which
pairs it finds is a function of the two images' variant hashes alone (content-addressed: a content's hashes
never change), so the pairs among contents searched before still hold, and a grown collection needs only the
new contents searched against all (:func:`maya.hashing.dihedral.pairs_between`).

One file per hash algorithm and radius, ``<data dir>/index/turned-<algorithm>-r<radius>-<digest>.npz``
(:func:`pair_file`):

* ``sha256``: (M,) ``S64`` the contents the pairs were searched among (every pair among them is in the file);
* ``a``, ``b``: int64 (P,) rows of ``sha256``: the pairs within the radius only through a flip or quarter turn
  (the plain search finds the others), as :func:`maya.dedup.candidates.turned_pairs` gives them.

Derived like every index file (:mod:`maya.index.collection`): a missing, damaged or foreign file is ignored
and written again; a file that cannot be written (a read-only data folder) only costs the next run the search.
Pairs from the file are candidates, verified by the rule like any other, so the file decides no match.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from maya.index.collection import part_path, positions
from maya.index.damaged import DAMAGED

#: Layout version of the files; a file of another version is ignored (and replaced).
VERSION = 1


def pair_file(folder: str | os.PathLike, algorithm: str, radius: int) -> Path:
    """The file of the turned pairs of ``algorithm`` (the variant hashes' id) within ``radius`` bits."""
    return part_path(folder, "turned", f"{algorithm}-r{int(radius)}")


def turned_pairs(folder: str | os.PathLike, algorithm: str, shas: Sequence[str], variants: np.ndarray, radius: int,
                 search: Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The turned pairs ``(a, b)`` (int64, indices into ``shas``) of the contents ``shas`` with ``variants``
    (uint64 (n, 8)), reusing the pairs the file in ``folder`` holds for contents searched before.

    ``search(variants, radius)``: the search of a collection from scratch (used when there is no file).
    """
    from maya.hashing import dihedral

    path = pair_file(folder, algorithm, radius)
    current = np.array(list(shas), dtype="S64")
    kept = _load(path, algorithm, radius)
    if kept is None:
        a, b = search(variants, radius)
        _save(path, algorithm, radius, current, a, b)
        return a, b
    old_sha, old_a, old_b = kept
    order = np.argsort(current)
    at = positions(current[order], order, old_sha)  # each row of the file's contents in ``shas`` (-1: not in this run)
    both = (at[old_a] >= 0) & (at[old_b] >= 0)
    a, b = at[old_a[both]], at[old_b[both]]
    searched = np.zeros(len(current), bool)
    searched[at[at >= 0]] = True
    new = np.flatnonzero(~searched)
    if new.size:  # the new contents against all (new ones included): pairs within the radius only when turned
        i, j, _, k = dihedral.pairs_between(variants[new], variants, radius)
        turned = (k != 0) & (new[i] != j)
        a, b = np.concatenate([a, new[i[turned]]]), np.concatenate([b, j[turned]])
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        key = np.unique(lo * len(current) + hi)  # a pair of two new contents is found from both
        a, b = key // len(current), key % len(current)
        _save(path, algorithm, radius, current, a, b)
    return a, b


def _load(path: Path, algorithm: str, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != VERSION or str(z["algorithm"]) != algorithm or int(z["radius"]) != radius:
                return None
            sha, a, b = z["sha256"], z["a"].astype(np.int64), z["b"].astype(np.int64)
    except DAMAGED:
        return None  # missing or damaged: searched again, and written again
    m = sha.shape[0]
    if (sha.ndim != 1 or sha.dtype.kind != "S" or a.shape != b.shape or a.ndim != 1
            or (a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= m))
            or np.unique(sha).size != m):
        return None
    return sha.astype("S64"), a, b


def _save(path: Path, algorithm: str, radius: int, sha: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    from maya.io.atomic import atomic_file

    try:
        with atomic_file(path) as f:
            np.savez(f, version=np.int64(VERSION), algorithm=np.array(algorithm), radius=np.int64(radius),
                     sha256=sha, a=np.asarray(a, np.int64), b=np.asarray(b, np.int64))
    except OSError:  # a read-only data folder: the pairs are still right, only not kept for next time
        pass
