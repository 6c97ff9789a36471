"""Nearest neighbours of unit embeddings at any size: exact blockwise products, or faiss's IVF beyond a size.

Two questions, one module: ``self_topk(vectors, k)`` (dedup: each image's k most similar others) and
``query_topk(base, queries, k)`` (search: each query's k most similar base vectors). Both return
``(index int64 (M, k), similarity float32 (M, k))`` by decreasing cosine similarity (= dot product of unit
rows); positions with no neighbour (k > what an approximate search found) hold index -1, similarity -inf.

How (``method``):

* ``"exact"``: :func:`maya.embedding.knn.clip_topk` (self) or blockwise products here (queries): N^2 d
  multiply-adds, memory one tile. Below :data:`EXACT_MAX` vectors it is the fastest; it is also what runs
  when faiss is not installed (``pip install 'mirror-of-maya[ann]'`` adds it).
* ``"ivf"``: a faiss IVF index (inner product), ``nlist`` ~ sqrt(N) cells trained by k-means on a
  sample, ``nprobe`` cells searched per query, 4-bit product codes scanned there and the best re-ranked
  with the exact vectors (:func:`build_ivf`). Approximate: a near copy is missed only when it falls in a
  cell not probed; :func:`recall_against_exact` measures how often on a sample of queries, and callers
  that report a figure must print that measurement, never assume it.
* ``"auto"``: ``ivf`` when faiss imports and N > :data:`EXACT_MAX`, else ``exact``.

HNSW is not used: on 2 cores its build over 1M x 512 takes longer than the whole IVF search.
"""

from __future__ import annotations

import math

import numpy as np

#: Largest collection searched exactly by ``method="auto"``. Measured (2 cores, d = 512): exact top-16
#: self-join of 100k takes ~70 s, faiss IVF ~10 s at recall >= 0.99; at 20k both take ~3 s.
EXACT_MAX = 20_000
#: Cells probed per query by IVF, and the codes scanned in them (see :func:`build_ivf`). Measured on the
#: top-16 self-join of 1M x 512 (benchmarks/bench_scale.py, 30 % near copies; recall of the near-copy pairs
#: of 2,000 sampled rows; CPU seconds of both cores, load ~9): sqrt(N) = 1024 cells, nprobe 8, 2x re-rank:
#: 97.9 s CPU, recall 0.9935; 512 cells, nprobe 4: 74.4 s, recall 0.9514; 2048 cells, nprobe 16, 4x
#: re-rank (the earlier defaults): see the README's performance table. The coarse assignment (every vector
#: against every centroid, twice: add and search) costs in proportion to the cells, the scan to the cells
#: probed times the cell size, so fewer, larger cells probed fewer times cut the CPU at the same recall.
DEFAULT_NPROBE = 10
DEFAULT_CODES = "pq"
#: pq: candidates re-ranked exactly per neighbour asked for.
DEFAULT_REFINE = 2.0
#: Fewer queries than this are searched on one thread: measured (30k x 512, one query, 2 cores that other
#: processes also used), 0.07 ms on one thread against a median 24 ms on two (OpenMP waiting on busy cores).
FEW_QUERIES = 64


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def choose_method(n: int, method: str = "auto") -> str:
    """``"exact"`` or ``"ivf"`` for a collection of ``n`` vectors (see the module docstring)."""
    if method not in ("auto", "exact", "ivf"):
        raise ValueError(f"unknown neighbour method {method!r}: auto, exact or ivf")
    if method == "auto":
        return "ivf" if n > EXACT_MAX and faiss_available() else "exact"
    if method == "ivf" and not faiss_available():
        raise ImportError("approximate neighbours need faiss: pip install 'mirror-of-maya[ann]' (faiss-cpu)")
    return method


def build_ivf(vectors: np.ndarray, *, nlist: int | None = None, codes: str = DEFAULT_CODES,
              train_size: int | None = None, refine: float = DEFAULT_REFINE, seed: int = 0):
    """A faiss IVF index (inner product) over ``vectors`` (N, d) float32 unit rows, with its vectors added.

    ``nlist``: cells, default ``sqrt(N)`` rounded to a power of two (at most N / 39, faiss's minimum points
    per cell). ``codes``: ``"flat"`` (``IndexIVFFlat``: full vectors scanned in the probed cells) or ``"pq"``
    (4-bit product codes scanned with SIMD, ``PQ{d/8}x4fs``, then the ``refine`` x k best re-ranked with the
    exact vectors: ``IndexRefineFlat``; the similarities returned are exact). ``train_size``: rows k-means
    sees (default 32 per cell, at least 16,384, a seeded sample)."""
    import faiss

    v = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = v.shape
    if nlist is None:
        nlist = 2 ** round(math.log2(max(1.0, math.sqrt(n))))
    nlist = int(max(1, min(nlist, n // 39 or 1)))
    if codes == "flat":
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    elif codes == "pq":
        if d % 8:
            raise ValueError(f"pq codes need a dimension divisible by 8, got {d}")
        index = faiss.index_factory(d, f"IVF{nlist},PQ{d // 8}x4fs,RFlat", faiss.METRIC_INNER_PRODUCT)
        faiss.downcast_index(index).k_factor = float(refine)
    else:
        raise ValueError(f"unknown codes {codes!r}: flat or pq")
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.seed = seed
    ivf.cp.min_points_per_centroid = 1
    m = int(min(n, train_size or max(16384, 32 * nlist)))
    sample = v if m >= n else v[np.sort(np.random.default_rng(seed).choice(n, m, replace=False))]
    index.train(sample)
    index.add(v)
    return index


def ivf_codes(index) -> np.ndarray:
    """The part of a :func:`build_ivf` index (codes ``pq``) worth keeping on disk: the trained cells and the
    4-bit codes (``IndexIVFPQFastScan``, ~d/16 bytes a vector), serialized (uint8). The exact vectors it
    re-ranks with are not in it: they are the embeddings themselves (:func:`ivf_from_codes` takes them)."""
    import faiss

    top = faiss.downcast_index(index)
    if not isinstance(top, faiss.IndexRefine):
        raise ValueError("only an IVF index with pq codes (build_ivf(codes='pq')) is kept as codes")
    return faiss.serialize_index(top.base_index)


def ivf_add_codes(codes: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """:func:`ivf_codes` with ``vectors`` (M, d) float32 added (assigned to the trained cells)."""
    import faiss

    base = faiss.deserialize_index(np.ascontiguousarray(codes, dtype=np.uint8))
    base.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return faiss.serialize_index(base)


def ivf_from_codes(codes: np.ndarray, vectors: np.ndarray, *, refine: float = DEFAULT_REFINE):
    """The index :func:`build_ivf` made, from its :func:`ivf_codes` and the vectors (N, d) float32 it was built
    over, in the same order; rows of ``vectors`` beyond those the codes hold are added to it first (assigned to
    the trained cells, not retrained). Raises ``ValueError`` when the codes do not fit the vectors."""
    import faiss

    v = np.ascontiguousarray(vectors, dtype=np.float32)
    base = faiss.deserialize_index(np.ascontiguousarray(codes, dtype=np.uint8))  # already its own class
    if not isinstance(base, faiss.IndexIVFPQFastScan) or base.d != v.shape[1] or base.ntotal > v.shape[0]:
        raise ValueError("the saved neighbour index does not fit these vectors")
    if base.ntotal < v.shape[0]:
        base.add(v[base.ntotal:])
    index = faiss.IndexRefineFlat(base, faiss.swig_ptr(v))  # copies v: the re-ranking vectors
    index.k_factor = float(refine)
    index.referenced_objects = [base]  # the wrapper does not own its base index: keep it alive with it
    return index


def _faiss_answer(index, q: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    ivf = faiss.extract_index_ivf(index)
    ivf.nprobe = int(max(1, min(nprobe, ivf.nlist)))
    q = np.ascontiguousarray(q, dtype=np.float32)
    threads = faiss.omp_get_max_threads()
    if q.shape[0] < FEW_QUERIES and threads > 1:
        faiss.omp_set_num_threads(1)  # a few queries: OpenMP's start and join cost more than they share
    try:
        sim, idx = index.search(q, k)
    finally:
        faiss.omp_set_num_threads(threads)
    sim = sim.astype(np.float32)
    sim[idx < 0] = -np.inf
    return idx.astype(np.int64), sim


def self_topk(vectors: np.ndarray, k: int, *, method: str = "auto", nprobe: int = DEFAULT_NPROBE,
              index=None, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar other rows of each row of ``vectors`` (N, d) float32 unit rows.

    ``index``: a prebuilt :func:`build_ivf` of the same vectors (method ivf), else built here. Queries go
    in chunks of ``chunk`` rows (the answer is N x k; the working set one chunk)."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    n = v.shape[0]
    k = int(min(k, max(n - 1, 0)))
    if choose_method(n, method) == "exact" or k == 0:
        from maya.embedding.knn import clip_topk

        return clip_topk(v, k)
    index = index if index is not None else build_ivf(v)
    out_i = np.empty((n, k), np.int64)
    out_s = np.empty((n, k), np.float32)
    for s in range(0, n, chunk):
        idx, sim = _faiss_answer(index, v[s:s + chunk], k + 1, nprobe)
        own = idx == np.arange(s, s + idx.shape[0])[:, None]
        # drop itself (or the last column when itself was not found) keeping the order
        drop = np.where(own.any(axis=1), own.argmax(axis=1), k)
        keep = np.ones_like(own)
        keep[np.arange(idx.shape[0]), drop] = False
        out_i[s:s + chunk] = idx[keep].reshape(-1, k)
        out_s[s:s + chunk] = sim[keep].reshape(-1, k)
    return out_i, out_s


def query_topk(base: np.ndarray, queries: np.ndarray, k: int, *, method: str = "auto", nprobe: int = DEFAULT_NPROBE,
               index=None, max_block_bytes: int = 64 << 20) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar rows of ``base`` (N, d) for each row of ``queries`` (Q, d), unit float32 rows.

    Exact: blocks of base rows so one (Q, block) similarity tile stays under ``max_block_bytes``."""
    b = np.ascontiguousarray(base, dtype=np.float32)
    q = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, b.shape[1] if b.ndim == 2 else 0)
    n, nq = b.shape[0], q.shape[0]
    k = int(min(k, n))
    if nq == 0 or k == 0:
        return np.zeros((nq, k), np.int64), np.zeros((nq, k), np.float32)
    if choose_method(n, method) == "ivf":
        return _faiss_answer(index if index is not None else build_ivf(b), q, k, nprobe)
    from maya.embedding.knn import merge_topk

    block = int(max(k, min(n, max_block_bytes // (16 * nq))))
    best_i = np.empty((nq, 0), np.int64)
    best_s = np.empty((nq, 0), np.float32)
    for c0 in range(0, n, block):
        best_i, best_s = merge_topk(best_i, best_s, q @ b[c0:c0 + block].T, c0, k)  # a (Q, C) tile
    return best_i, best_s


def recall_against_exact(vectors: np.ndarray, index: np.ndarray, similarity: np.ndarray, threshold: float,
                         rows: np.ndarray) -> tuple[float, int]:
    """Recall of the pairs with similarity >= ``threshold`` that involve a sample of ``rows``.

    ``index``/``similarity``: an approximate :func:`self_topk` answer (N, k). For each sampled row r, the
    exact top-k (blockwise products, against all N) gives its true pairs {r, t} at or above the threshold;
    a pair counts as found when the approximate answer lists it from either side (``t`` among r's
    neighbours or ``r`` among t's), which is how dedup uses the answer (:func:`maya.embedding.knn.pairs_above`
    joins both directions). Returns ``(recall, true pairs in the sample)`` (1.0 when there are none)."""
    rows = np.asarray(rows, dtype=np.int64)
    k = index.shape[1]
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    ei, es = query_topk(v, v[rows], k + 1, method="exact")  # one block product for the whole sample
    found = total = 0
    for r, row_i, row_s in zip(rows, ei, es):
        for t in row_i[(row_s >= threshold) & (row_i != r)][:k].tolist():
            total += 1
            found += bool(t in index[r] or r in index[t])
    return (found / total if total else 1.0), total
