"""The hasher interface: what a perceptual hash must offer so the study, dedup and the index can use it.

A hash is one unsigned integer of at most 64 bits, held in ``np.uint64`` arrays; the distance between
two hashes is the Hamming distance in bits (0..``bits``). Adding another hash (dHash, aHash, PDQ at 64
bits) is one module that builds a :class:`Hasher` and one :func:`register` call in
:mod:`maya.hashing`.

``name`` is the algorithm id under which hashes are cached in the ``hashes`` table: bump it if the
bits a given image gets ever change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


def hamming(a, b) -> np.ndarray:
    """Hamming distances between hashes of up to 64 bits (uint64 arrays or ints; numpy broadcasting).

    Returns uint8 values in 0..64 (cast before subtracting).
    """
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    return np.bitwise_count(np.bitwise_xor(a, b))


@dataclass(frozen=True)
class Hasher:
    """One perceptual hash.

    name:      algorithm id (the cache key in the ``hashes`` table), e.g. ``"phash64-v2"``.
    bits:      hash length in bits (<= 64).
    compute:   PIL images (N,) -> uint64 (N,).
    compute_gray: optional fast path from the grey arrays the hash is computed on, (N, h, w) -> uint64 (N,),
               so a decode step can keep only those arrays (``gray`` makes one from an image).
    gray:      optional, PIL image -> float64 (h, w), the preprocessing ``compute_gray`` takes.
    distance:  Hamming distance in bits, numpy broadcasting, uint8.
    """

    name: str
    bits: int
    compute: Callable[[Sequence], np.ndarray]
    compute_gray: Callable[[np.ndarray], np.ndarray] | None = None
    gray: Callable[[object], np.ndarray] | None = None
    distance: Callable[[object, object], np.ndarray] = hamming

    def __post_init__(self):
        if not 0 < self.bits <= 64:
            raise ValueError(f"a hasher's bits must be in 1..64, not {self.bits}")
