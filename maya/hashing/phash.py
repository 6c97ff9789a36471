"""64-bit DCT perceptual hash, bit-for-bit compatible with ``imagehash.phash``, computed in batches.

A hash is one ``np.uint64``: the 64 bits of imagehash's 8x8 boolean matrix, row-major, the
top-left bit as the most significant bit, so ``to_hex(h) == str(imagehash.phash(image))``.

Pipeline per image (the same as imagehash.phash with ``hash_size=8, highfreq_factor=4``)::

    image -> convert("L") -> LANCZOS resize to 32x32 -> 2-D DCT-II (unnormalised) -> top-left 8x8
          -> bit = coefficient > median of the 64 coefficients

The DCT of the whole batch is two matrix products, ``C8 @ X @ C8.T`` with ``C8`` the first 8 rows of
the 32-point DCT-II matrix, so only the 64 coefficients that the hash uses are computed.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from maya.hashing.base import Hasher, hamming  # noqa: F401  (hamming: re-exported, its old home)

ALGORITHM = "phash64-v2"
"""Cache key of this hash: bump it if the bits a given image gets ever change. The bits are always
``imagehash.phash`` of the decoded pixels; the version names the decode too: v1 composited transparent
images over white, v2 over a contrasting background (:mod:`maya.io.images`, decode version 2), so hashes
stored under v1 of white-on-transparent images are not reused."""

HASH_SIZE = 8  # the hash is HASH_SIZE x HASH_SIZE bits
GRAY_SIZE = 32  # HASH_SIZE * imagehash's default highfreq_factor (4)


def _dct_matrix(n: int, rows: int) -> np.ndarray:
    """First ``rows`` rows of the unnormalised n-point DCT-II matrix, float64 (rows, n).

    ``(M @ x)[k] = 2 * sum_j x[j] * cos(pi * k * (2j + 1) / (2n))``, which is what
    ``scipy.fftpack.dct(x)`` (type II, ``norm=None``) returns.
    """
    k = np.arange(rows, dtype=np.float64)[:, None]
    j = np.arange(n, dtype=np.float64)[None, :]
    return 2.0 * np.cos(np.pi * k * (2.0 * j + 1.0) / (2.0 * n))


_DCT8 = _dct_matrix(GRAY_SIZE, HASH_SIZE)  # (8, 32)
_DCT8_T = np.ascontiguousarray(_DCT8.T)  # (32, 8)

# The matrix product and scipy's FFT-based DCT round differently: their coefficients differ by
# a few ulps of the largest coefficient (measured <= 3e-16 of it on the skimage photos). A bit
# can only come out different where a coefficient lies that close to the median: flat or
# exactly symmetric images, where scipy returns exact zeros and the matrix product +-1e-13
# noise. Images whose smallest |coefficient - median| is under this relative margin are
# recomputed with scipy's own DCT, so the bits always equal imagehash's. The margin is ~1e7
# times the measured disagreement, and real photos almost never come that close (so the
# fallback costs nothing in practice).
_TIE_MARGIN = 1e-8


def gray32(image: Image.Image) -> np.ndarray:
    """The 32x32 grey image pHash transforms: float64 (32, 32), values 0..255.

    Exactly imagehash.phash's preprocessing: ``image.convert("L").resize((32, 32), LANCZOS)``.
    Alpha is dropped by ``convert("L")`` (not composited), as in imagehash.
    """
    small = image.convert("L").resize((GRAY_SIZE, GRAY_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.float64)


def _low_dct_exact(gray: np.ndarray) -> np.ndarray:
    """Top-left 8x8 DCT via scipy.fftpack, the same arithmetic as imagehash: (N, 32, 32) -> (N, 8, 8)."""
    import scipy.fftpack

    full = scipy.fftpack.dct(scipy.fftpack.dct(gray, axis=1), axis=2)
    return full[:, :HASH_SIZE, :HASH_SIZE]


def _pack_bits(bits: np.ndarray) -> np.ndarray:
    """(N, 64) bool -> (N,) uint64, first column as the most significant bit."""
    packed = np.packbits(bits, axis=1, bitorder="big")  # (N, 8) uint8, big-endian bit order
    return packed.view(">u8").reshape(-1).astype(np.uint64)


def low_dct(gray: np.ndarray) -> np.ndarray:
    """The 8x8 lowest DCT-II frequencies of 32x32 grey images: (N, 32, 32) -> float64 (N, 8, 8).

    ``[n, u, v]``: u the vertical (row) frequency, v the horizontal one, as the hash's bit order. Computed
    as a matrix product (see ``_TIE_MARGIN`` for how it can differ from scipy's DCT).
    """
    # DCT along axis 0 (rows) then axis 1 (columns), keeping only the 8 lowest frequencies.
    return np.matmul(np.matmul(_DCT8, np.asarray(gray, dtype=np.float64)), _DCT8_T)


def phash_bits_from_gray(gray: np.ndarray) -> np.ndarray:
    """pHashes of a batch of 32x32 grey images: (N, 32, 32) -> uint64 (N,).

    ``gray`` holds values as :func:`gray32` returns them (0..255; any real dtype, computed in
    float64). The result equals ``imagehash.phash`` bit for bit (see ``_TIE_MARGIN``).
    """
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 3 or gray.shape[1:] != (GRAY_SIZE, GRAY_SIZE):
        raise ValueError(f"expected shape (N, {GRAY_SIZE}, {GRAY_SIZE}), got {gray.shape}")
    n = gray.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.uint64)

    low = low_dct(gray).reshape(n, HASH_SIZE * HASH_SIZE)
    # np.median of 64 values is the mean of the 32nd and 33rd, as in imagehash.
    median = np.median(low, axis=1, keepdims=True)
    gap = np.abs(low - median).min(axis=1)
    scale = np.abs(low).max(axis=1)
    near_tie = np.flatnonzero(gap <= _TIE_MARGIN * (scale + 1.0))
    if near_tie.size:
        exact = _low_dct_exact(gray[near_tie]).reshape(near_tie.size, -1)
        low[near_tie] = exact
        median[near_tie] = np.median(exact, axis=1, keepdims=True)
    return _pack_bits(low > median)


def phash_bits(images: Sequence[Image.Image]) -> np.ndarray:
    """pHashes of PIL images: uint64 (N,), equal to ``imagehash.phash`` of each image."""
    if len(images) == 0:
        return np.zeros(0, dtype=np.uint64)
    return phash_bits_from_gray(np.stack([gray32(im) for im in images]))


def to_hex(bits) -> str:
    """16 lowercase hex digits, the same string as ``str(imagehash.phash(...))``."""
    return format(int(bits), "016x")


def from_hex(s: str) -> int:
    """Inverse of :func:`to_hex` (also reads ``str(imagehash.phash(...))``)."""
    value = int(s, 16)
    if not 0 <= value < 1 << 64 or len(s.strip()) > 16:
        raise ValueError(f"not a 64-bit hex hash: {s!r}")
    return value


#: pHash behind the :class:`maya.hashing.base.Hasher` interface (``maya.hashing.DEFAULT``).
PHASH = Hasher(name=ALGORITHM, bits=HASH_SIZE * HASH_SIZE, compute=phash_bits,
               compute_gray=phash_bits_from_gray, gray=gray32)
