"""Exact nearest neighbours of unit vectors by cosine similarity, blockwise: never an N x N matrix.

For N vectors of dimension d, ``clip_topk`` multiplies a block of B query rows by all N vectors
(a B x N similarity block, float32), keeps each row's k best with ``argpartition``, and moves on.
Time is N^2 d multiply-adds (BLAS, all cores); memory is the block's working set (the similarities
and argpartition's int64 indices, about ``BYTES_PER_BLOCK_CELL`` bytes per cell, measured) plus the
N x k answer. B is chosen so the working set stays under ``max_block_bytes``.

Brute force is exact and, at the sizes a photo collection reaches on one machine (1e4-1e6 images),
a BLAS matrix product is hard to beat; an approximate index (faiss, hnswlib) pays off beyond that.
"""

from __future__ import annotations

import numpy as np

#: Upper bound on the memory one block works in (bytes).
DEFAULT_MAX_BLOCK_BYTES = 64 << 20
#: Bytes per (query, vector) cell of a block: float32 similarities (4), argpartition's int64 indices
#: (8) and slack. Measured with numpy 2.4: N = 11,000, d = 16, the 64 MiB default -> peak RSS +98 MiB
#: (the vectors and their transpose included).
BYTES_PER_BLOCK_CELL = 16


def clip_topk(
    vectors: np.ndarray,
    k: int,
    *,
    block: int | None = None,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar other vectors of each vector (cosine = dot product of unit rows).

    Args:
        vectors: (N, d) float32 (or castable), rows of unit L2 norm.
        k: neighbours per row; clipped to N - 1.
        block: query rows per matrix product; None: as many as fit in ``max_block_bytes``
            (at least 1, at most 4096).
        max_block_bytes: memory bound for the working set of one block (see the module docstring).

    Returns:
        ``(index, similarity)``: int64 (N, k) and float32 (N, k); row i lists i's neighbours by
        decreasing similarity (ties by increasing index), never i itself. Which of several vectors
        tied at the k-th similarity is listed is unspecified.
    """
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"vectors must be (N, d), got shape {v.shape}")
    n = v.shape[0]
    k = int(min(k, max(n - 1, 0)))
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    index = np.zeros((n, k), dtype=np.int64)
    sim = np.zeros((n, k), dtype=np.float32)
    if n == 0 or k == 0:
        return index, sim
    if block is None:
        block = int(max(1, min(4096, max_block_bytes // (BYTES_PER_BLOCK_CELL * n))))
    vt = np.ascontiguousarray(v.T)
    for start in range(0, n, block):
        stop = min(n, start + block)
        s = v[start:stop] @ vt  # (b, N)
        rows = np.arange(stop - start)
        s[rows, rows + start] = -np.inf  # never one's own neighbour
        part = np.argpartition(s, n - k, axis=1)[:, n - k:]  # the k largest; k <= N - 1, a valid kth
        part_sim = np.take_along_axis(s, part, axis=1)
        # sort the k by (similarity desc, index asc)
        order = np.lexsort((part, -part_sim), axis=1)
        index[start:stop] = np.take_along_axis(part, order, axis=1)
        sim[start:stop] = np.take_along_axis(part_sim, order, axis=1)
    return index, sim


def pairs_above(index: np.ndarray, similarity: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Unordered pairs ``(i, j)``, ``i < j``, from a ``clip_topk`` answer with similarity >= threshold.

    Each pair appears once even when both i and j list each other. Returns int64 arrays sorted by (i, j).
    """
    n, k = index.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = index.ravel()
    keep = similarity.ravel() >= threshold
    i, j = np.minimum(rows[keep], cols[keep]), np.maximum(rows[keep], cols[keep])
    key = np.unique(i * max(n, 1) + j)
    return key // max(n, 1), key % max(n, 1)
