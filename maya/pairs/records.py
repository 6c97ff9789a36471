"""What a pair build or import produces (pairs, file records, hashes), its error, and the helpers both use.

A :class:`Pair` refers to images by sha256; ``split`` is 'val' or 'test', decided per unit (an
original, a group of originals, or a connected group of imported images) by :func:`split_units`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maya.errors import MayaUsageError
from maya.io.atomic import write_atomically

#: Two originals this close in pHash (bits) are taken to be the same picture: never a negative pair.
#: Different photos are >= 18 bits apart in practice; re-saves and resizes of one photo 0-4.
NEAR_DUPLICATE_BITS = 4
KIND_SEMANTIC = "semantic"
KIND_HARD_PHASH = "hard_negative_phash"
KIND_HARD_EMBEDDING = "hard_negative_embedding"
KIND_RANDOM = "random_negative"
NEGATIVE_KINDS = (KIND_HARD_PHASH, KIND_HARD_EMBEDDING, KIND_RANDOM)



class PairsError(MayaUsageError, ValueError):
    """A problem with the user's input that stops the whole build or import."""


@dataclass(frozen=True, slots=True)  # a million imported pairs: ~120 bytes each, no __dict__
class Pair:
    pair_id: int
    a: str  # sha256
    b: str  # sha256
    label: bool
    kind: str
    params: dict | None
    split: str
    original: str | None  # sha256 of the original the pair was made from (the split unit)


@dataclass(frozen=True)
class FileRecord:
    path: str
    sha256: str | None
    size_bytes: int | None
    mtime: float | None
    status: str  # 'ok' | 'error'
    error: str | None = None


@dataclass
class PairSet:
    """What a build or an import produced.

    pairs:   the labelled pairs, ``pair_id`` 0..n-1 in a fixed order.
    files:   one record per file seen (originals, derived images, unreadable files).
    errors:  one human line per problem (a row, a file, a near-duplicate pair of originals).
    hashes:  hash bits (``maya.hashing.DEFAULT``, pHash, decoded at :data:`SURVEY_MIN_SIDE`) of every
             image a build looked at, sha256 -> int; empty for imports.
    timings: seconds per build phase ("survey", "edits", "negatives"), for benchmarks.
    """

    pairs: list[Pair] = field(default_factory=list)
    files: list[FileRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    hashes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.pairs:
            out[p.kind] = out.get(p.kind, 0) + 1
        return dict(sorted(out.items()))


def file_record(path: Path, data: bytes | None = None, error: str | None = None, *,
                sha256: str | None = None) -> FileRecord:
    """The record of ``path``: ``ok`` with the sha256 of ``data`` (or the given ``sha256``), else ``error``."""
    try:
        st = path.stat()
        size, mtime = st.st_size, st.st_mtime
    except OSError:
        size = mtime = None
    if data is not None:
        sha256 = hashlib.sha256(data).hexdigest()
    if sha256 is None:
        return FileRecord(str(path), None, size, mtime, "error", error)
    return FileRecord(str(path), sha256, size, mtime, "ok", None)


def store_derived(images_dir: Path, data: bytes, ext: str) -> tuple[str, Path]:
    """Write ``data`` content-addressed under ``images_dir`` (atomic, once). Returns (sha256, path).

    Safe to call from several threads or processes at once: each writes a temporary file and
    renames it into place, so a reader never sees a partial file.
    """
    sha = hashlib.sha256(data).hexdigest()
    path = Path(images_dir) / sha[:2] / f"{sha}.{ext}"
    if not path.exists():
        write_atomically(path, data, mode=0o600)
    return sha, path


def split_units(n: int, seed: int, val_fraction: float) -> np.ndarray:
    """Seeded 'val' / 'test' for ``n`` units: (n,) object array, round(n * val_fraction) of them
    'val' (at least one of each when n >= 2)."""
    rng = np.random.default_rng([seed, 0x5B117])
    order = rng.permutation(n)
    n_val = int(round(n * val_fraction))
    if n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    split = np.empty(n, dtype=object)
    split[order[:n_val]] = "val"
    split[order[n_val:]] = "test"
    return split
