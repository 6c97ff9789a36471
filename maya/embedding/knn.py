"""Exact nearest neighbours of unit vectors by cosine similarity, blockwise: never an N x N matrix.

For N vectors of dimension d, ``clip_topk`` multiplies a block of B query rows by a tile of C vectors
(a B x C similarity tile, float32), keeps each row's running k best with ``argpartition``, and moves on.
Time is N^2 d multiply-adds (BLAS, all cores); memory is one tile's working set (the similarities and
argpartition's int64 indices, about ``BYTES_PER_BLOCK_CELL`` bytes per cell, measured) plus the N x k
answer, whatever N. B x C is chosen so the working set stays under ``max_block_bytes``.

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
#: argpartition's int64 indices made at once by :func:`merge_topk` (rows of a tile are merged in chunks).
_MERGE_INDEX_BYTES = 4 << 20


def clip_topk(
    vectors: np.ndarray,
    k: int,
    *,
    block: int | None = None,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    rows: slice | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar other vectors of each vector (cosine = dot product of unit rows).

    Works on tiles of ``block`` query rows x C columns (a float32 similarity tile, C chosen so the tile's
    working set stays under ``max_block_bytes``), keeping each row's running k best: memory does not grow
    with N beyond the vectors and the answer, and every matrix product stays large enough for BLAS.

    Args:
        vectors: (N, d) float32 (or castable), rows of unit L2 norm.
        k: neighbours per row; clipped to N - 1.
        block: query rows per tile; None: up to 1024 (fewer when N is small or the budget is tight).
        max_block_bytes: memory bound for the working set of one tile (see the module docstring).
        rows: only these query rows (a contiguous ``slice`` of ``range(N)``), against all N vectors; the
            answer then has one row per query row. Lets a caller spread the work or time a sample of it.

    Returns:
        ``(index, similarity)``: int64 (M, k) and float32 (M, k) for the M query rows; row i lists its
        neighbours by decreasing similarity (ties by increasing index), never itself. Which of several
        vectors tied at the k-th similarity is listed is unspecified.
    """
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"vectors must be (N, d), got shape {v.shape}")
    n = v.shape[0]
    k = int(min(k, max(n - 1, 0)))
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    first, last, step = (rows or slice(None)).indices(n)
    if step != 1:
        raise ValueError("rows must be a contiguous slice")
    m = max(0, last - first)
    index = np.zeros((m, k), dtype=np.int64)
    sim = np.zeros((m, k), dtype=np.float32)
    if m == 0 or k == 0:
        return index, sim
    cells = max(1, max_block_bytes // BYTES_PER_BLOCK_CELL)  # similarity cells one tile may hold
    if block is None:
        block = int(max(1, min(1024, m, cells // max(1, min(n, 4096)))))
    columns = int(max(1, min(n, cells // block)))
    for start in range(first, last, block):
        stop = min(last, start + block)
        best_i, best_s = _tile_topk(v, start, stop, k, columns)
        index[start - first:stop - first] = best_i
        sim[start - first:stop - first] = best_s
    return index, sim


def _tile_topk(v: np.ndarray, start: int, stop: int, k: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Top k of query rows start:stop over all columns, a tile of ``columns`` at a time."""
    n = v.shape[0]
    q = v[start:stop]
    own = np.arange(start, stop)
    best_i = np.empty((stop - start, 0), dtype=np.int64)
    best_s = np.empty((stop - start, 0), dtype=np.float32)
    for c0 in range(0, n, columns):
        c1 = min(n, c0 + columns)
        s = q @ v[c0:c1].T  # (b, C); a transposed view, no copy of the vectors
        inside = (own >= c0) & (own < c1)
        s[np.flatnonzero(inside), own[inside] - c0] = -np.inf  # never one's own neighbour
        best_i, best_s = merge_topk(best_i, best_s, s, c0, k)
    return best_i, best_s


def merge_topk(best_i: np.ndarray, best_s: np.ndarray, s: np.ndarray, c0: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The running top ``k`` per row merged with a similarity tile ``s`` (rows, C) of columns ``c0:c0+C``.

    ``best_i`` int64 / ``best_s`` float32 (rows, <= k): the best so far. Ties keep the lower index, so the
    result does not depend on the tile width: (similarity desc, index asc). Rows are merged
    :data:`_MERGE_INDEX_BYTES` of argpartition indices at a time (each row is independent), so the int64
    indices never cost twice the float32 tile."""
    width = s.shape[1]
    step = max(1, _MERGE_INDEX_BYTES // (8 * max(1, width)))
    if s.shape[0] > step:
        parts = [merge_topk(best_i[r:r + step], best_s[r:r + step], s[r:r + step], c0, k)
                 for r in range(0, s.shape[0], step)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if width > k:
        part = np.argpartition(s, width - k, axis=1)[:, width - k:]
    else:
        part = np.broadcast_to(np.arange(width), s.shape)
    cand_i = np.concatenate([best_i, part + c0], axis=1)
    cand_s = np.concatenate([best_s, np.take_along_axis(s, part, axis=1)], axis=1)
    order = np.lexsort((cand_i, -cand_s), axis=1)[:, :k]
    return np.take_along_axis(cand_i, order, axis=1), np.take_along_axis(cand_s, order, axis=1)


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
