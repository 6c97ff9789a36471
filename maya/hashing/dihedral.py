"""Dihedral-aware pHash: the pHashes of all 8 flips and quarter turns of an image, from its one DCT block.

A mirrored or quarter-turned copy is far from its original in plain pHash (about 32 bits: no better than
chance), yet its hash follows from the original's 8x8 low-frequency DCT block ``C[u, v]`` (u vertical,
v horizontal frequency) at no decode cost. With ``G`` the 32x32 grey image and ``N = 32``:

* mirror left-right, ``G[y, N-1-x]``: ``C[u, v] * (-1)**v`` (odd horizontal frequencies negate);
* flip top-bottom: ``C[u, v] * (-1)**u``;
* transpose, ``G[x, y]``: ``C[v, u]``; a quarter turn is a transpose and a flip.

Each variant's bits are then ``coefficient > median`` of its own 64 coefficients (a sign flip changes the
median, so it is recomputed per variant). Variant ``k`` is the hash of the image transformed by
:data:`TRANSFORMS[k] <TRANSFORMS>` (Pillow's ``Image.Transpose`` members); variant 0 is the plain
``phash64-v2`` hash, bit for bit. The variants equal ``imagehash.phash`` of the actually flipped/turned
pixels whenever the 32x32 resize commutes with the flip (the tests check it on real photos).

Matching: the dihedral distance of images a and b is ``min_k hamming(variant_k(a), plain(b))`` over both
orders (a against b's plain hash and b against a's), with the variant that reached it. The radius search
(:func:`pairs_within`) queries the plain hashes with all 8N variants (``maya.hashing.index``): exact, and
about 8x the probes of a plain search.

Hashes are ``np.uint64``; variants of N images are ``(N, 8)`` uint64 arrays; distances are bits (0..64).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from maya.hashing import phash
from maya.hashing.base import hamming

ALGORITHM = "phash64-dihedral-v2"
"""Cache key of the 8 variants (table ``hash_variants``): bump it if the bits a given image gets change."""

#: Variant k is the pHash of ``image.transpose(TRANSFORMS[k])`` (None: the image itself).
TRANSFORMS = (None, Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_180,
              Image.Transpose.TRANSPOSE, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270,
              Image.Transpose.TRANSVERSE)
#: Names of the variants, as stored and reported (``ROTATE_90`` is Pillow's: counter-clockwise).
VARIANTS = ("identity", "mirror", "flip", "rotate180", "transpose", "rotate90", "rotate270", "transverse")
N_VARIANTS = len(VARIANTS)

_K = phash.HASH_SIZE
_SIGN_U = np.where(np.arange(_K) % 2, -1.0, 1.0)[:, None]  # (-1)**u, (8, 1)
_SIGN_V = _SIGN_U.T  # (-1)**v, (1, 8)
# variant k: (transpose first?, row sign, column sign) applied to the block C[u, v]
_RECIPE = (
    (False, 1.0, 1.0), (False, 1.0, _SIGN_V), (False, _SIGN_U, 1.0), (False, _SIGN_U, _SIGN_V),
    (True, 1.0, 1.0), (True, _SIGN_U, 1.0), (True, 1.0, _SIGN_V), (True, _SIGN_U, _SIGN_V),
)


def _pixels(gray: np.ndarray, k: int) -> np.ndarray:
    """The grey arrays (N, 32, 32) transformed as variant ``k`` (for the exact near-tie fallback)."""
    t = TRANSFORMS[k]
    if t is None:
        return gray
    return np.asarray([np.asarray(Image.fromarray(g).transpose(t)) for g in gray], dtype=np.float64)


def _variant_block(low: np.ndarray, k: int) -> np.ndarray:
    transpose, su, sv = _RECIPE[k]
    block = np.swapaxes(low, 1, 2) if transpose else low
    return block * su * sv


def dihedral_bits_from_gray(gray: np.ndarray) -> np.ndarray:
    """The 8 variant hashes of a batch of 32x32 grey images: (N, 32, 32) -> uint64 (N, 8).

    Column 0 equals :func:`maya.hashing.phash.phash_bits_from_gray` (``phash64-v2``). Rows whose
    coefficients come within the tie margin of their median are recomputed from the transformed pixels with
    scipy's DCT, as plain pHash does, so ties break as in imagehash.
    """
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 3 or gray.shape[1:] != (phash.GRAY_SIZE, phash.GRAY_SIZE):
        raise ValueError(f"expected shape (N, {phash.GRAY_SIZE}, {phash.GRAY_SIZE}), got {gray.shape}")
    n = gray.shape[0]
    out = np.zeros((n, N_VARIANTS), dtype=np.uint64)
    if n == 0:
        return out
    low = phash.low_dct(gray)
    scale = np.abs(low).reshape(n, -1).max(axis=1)
    for k in range(N_VARIANTS):
        block = _variant_block(low, k).reshape(n, -1)
        median = np.median(block, axis=1, keepdims=True)
        gap = np.abs(block - median).min(axis=1)
        near_tie = np.flatnonzero(gap <= phash._TIE_MARGIN * (scale + 1.0))
        if near_tie.size:
            exact = phash._low_dct_exact(_pixels(gray[near_tie], k)).reshape(near_tie.size, -1)
            block[near_tie] = exact
            median[near_tie] = np.median(exact, axis=1, keepdims=True)
        out[:, k] = phash._pack_bits(block > median)
    return out


def dihedral_bits(images: Sequence[Image.Image]) -> np.ndarray:
    """The 8 variant hashes of PIL images: uint64 (N, 8); ``[:, k]`` is the pHash of the k-th flip/turn."""
    if len(images) == 0:
        return np.zeros((0, N_VARIANTS), dtype=np.uint64)
    return dihedral_bits_from_gray(np.stack([phash.gray32(im) for im in images]))


def distance(variants_a: np.ndarray, variants_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dihedral distance of pairs: ``(d, variant)``, int64 (P,) bits and int8 (P,) variant index.

    ``variants_a``, ``variants_b``: uint64 (P, 8), the variants of each pair's two images. ``d`` is the least
    of ``hamming(a_k, b_0)`` and ``hamming(a_0, b_k)`` over k; ``variant`` the k that gave it (the lowest on
    ties, so an unedited pair reports 0, ``identity``): b is about a turned by ``TRANSFORMS[k]`` or its inverse.
    """
    va = np.asarray(variants_a, dtype=np.uint64)
    vb = np.asarray(variants_b, dtype=np.uint64)
    if va.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int8)
    da = hamming(va, vb[:, :1]).astype(np.int64)  # (P, 8): a turned vs plain b
    db = hamming(va[:, :1], vb).astype(np.int64)  # plain a vs b turned
    both = np.minimum(da, db)
    k = np.argmin(both, axis=1)
    return both[np.arange(len(k)), k], k.astype(np.int8)


def pairs_within(variants: np.ndarray, radius: int, **index_options) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                                np.ndarray]:
    """All pairs ``i < j`` whose dihedral distance is within ``radius`` bits; exact.

    ``variants``: uint64 (N, 8) (:func:`dihedral_bits`). The plain hashes (column 0) are queried with all 8N
    variants (:func:`maya.hashing.index.query_within`); a pair found from either side counts once, with its
    least distance. ``index_options``: passed on (``workers``, ``method``...).

    Returns ``(i, j, d, variant)``: int64 (P,), int64 (P,), int64 (P,) bits, int8 (P,); sorted by (i, j).
    """
    from maya.hashing import index

    v = np.asarray(variants, dtype=np.uint64)
    if v.ndim != 2 or v.shape[1] != N_VARIANTS:
        raise ValueError(f"variants must have shape (N, {N_VARIANTS}), got {v.shape}")
    n = v.shape[0]
    if n < 2:
        e = np.zeros(0, np.int64)
        return e, e, e, np.zeros(0, np.int8)
    qi, ii, d = index.query_within(v[:, 0], v.reshape(-1), radius, **index_options)
    image, k = np.divmod(qi, N_VARIANTS)  # the query's image and variant
    other = ii
    keep = image != other
    image, other, d, k = image[keep], other[keep], d[keep].astype(np.int64), k[keep].astype(np.int8)
    lo, hi = np.minimum(image, other), np.maximum(image, other)
    # the least distance per pair, then the least variant: sort by (pair, d, k) and keep the first
    order = np.lexsort((k, d, hi, lo))
    lo, hi, d, k = lo[order], hi[order], d[order], k[order]
    first = np.ones(lo.size, dtype=bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return lo[first], hi[first], d[first], k[first]


def pairs_between(variants_a: np.ndarray, variants_b: np.ndarray, radius: int,
                  **index_options) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``(i, j)`` of a row of ``variants_a`` and a row of ``variants_b`` whose dihedral distance
    (:func:`distance`) is within ``radius`` bits; exact. Both uint64 (., 8).

    Two searches, one per side of :func:`distance`: ``a``'s 8 variants against ``b``'s plain hashes, and ``b``'s 8
    variants against ``a``'s (:func:`maya.hashing.index.query_within`); the pairs either finds get their least
    distance. The same pairs and variants as :func:`pairs_within` over the rows of both, for the pairs across them
    (a search of a few new images against a whole collection costs O(new), not a self-join of the collection).

    Returns ``(i, j, d, variant)``: int64 (P,) rows of ``variants_a``, int64 (P,) rows of ``variants_b``, int64 (P,)
    bits, int8 (P,); sorted by (i, j).
    """
    from maya.hashing import index

    va = np.asarray(variants_a, dtype=np.uint64).reshape(-1, N_VARIANTS)
    vb = np.asarray(variants_b, dtype=np.uint64).reshape(-1, N_VARIANTS)
    if not va.shape[0] or not vb.shape[0]:
        e = np.zeros(0, np.int64)
        return e, e, e, np.zeros(0, np.int8)
    q1, j1, _ = index.query_within(vb[:, 0], va.reshape(-1), radius, **index_options)  # a turned vs plain b
    q2, i2, _ = index.query_within(va[:, 0], vb.reshape(-1), radius, **index_options)  # plain a vs b turned
    i = np.concatenate([q1 // N_VARIANTS, i2])
    j = np.concatenate([j1, q2 // N_VARIANTS])
    key = np.unique(i * vb.shape[0] + j)
    i, j = key // vb.shape[0], key % vb.shape[0]
    d, k = distance(va[i], vb[j])
    within = d <= radius
    return i[within], j[within], d[within], k[within]
