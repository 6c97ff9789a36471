"""Embedding neighbours at any size (maya.embedding.ann): exact answers checked against a full product,
approximate ones (faiss, when installed) against exact, on small seeded data."""

from __future__ import annotations

import numpy as np
import pytest

from maya.embedding import ann


def _vectors(n=3000, d=64, seed=0):
    """Unit rows; every odd row a near copy (similarity ~0.99) of the row before it."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, d)).astype(np.float32)
    m = n // 2
    v[1:2 * m:2] = v[0:2 * m:2] + 0.1 * rng.standard_normal((m, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_exact_query_topk_equals_a_full_product():
    v = _vectors(500, 32)
    q = _vectors(7, 32, seed=3)
    idx, sim = ann.query_topk(v, q, 5, method="exact", max_block_bytes=4096)  # many small blocks
    full = q @ v.T
    want = np.argsort(-full, axis=1, kind="stable")[:, :5]
    assert np.array_equal(idx, want)
    assert np.allclose(sim, np.take_along_axis(full, want, axis=1), atol=1e-6)


def test_auto_is_exact_for_a_small_collection_and_never_lists_a_row_as_its_own_neighbour():
    from maya.embedding.knn import clip_topk

    v = _vectors(400, 16)
    assert ann.choose_method(len(v)) == "exact"
    idx, sim = ann.self_topk(v, 3)
    assert np.array_equal(idx, clip_topk(v, 3)[0])
    assert not (idx == np.arange(len(v))[:, None]).any()
    assert idx[0, 0] == 1 and sim[0, 0] > 0.95


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown neighbour method"):
        ann.choose_method(10, "hnsw")


@pytest.mark.parametrize("codes", ["flat", pytest.param("pq", marks=pytest.mark.slow)])
def test_ivf_finds_the_near_copies_that_exact_search_finds(codes):
    pytest.importorskip("faiss")
    v = _vectors()
    index = ann.build_ivf(v, codes=codes)
    idx, sim = ann.self_topk(v, 4, method="ivf", index=index)
    assert not (idx == np.arange(len(v))[:, None]).any()
    recall, pairs = ann.recall_against_exact(v, idx, sim, 0.9, np.arange(0, len(v), 7))
    assert pairs >= 400 and recall >= 0.99
    # the similarities listed are the true ones (exact re-rank for pq)
    ok = idx[:, 0] >= 0
    true = np.einsum("ij,ij->i", v[ok], v[idx[ok, 0]])
    assert np.allclose(sim[ok, 0], true, atol=1e-5)


def test_recall_counts_a_pair_missed_from_both_sides():
    v = _vectors(200, 16)
    idx, sim = ann.self_topk(v, 2, method="exact")
    assert ann.recall_against_exact(v, idx, sim, 0.9, np.arange(200))[0] == 1.0
    broken = idx.copy()
    broken[0] = [5, 6]
    broken[1] = [7, 8]  # rows 0 and 1 (near copies) no longer list each other
    recall, pairs = ann.recall_against_exact(v, broken, sim, 0.9, np.arange(200))
    assert recall == pytest.approx((pairs - 2) / pairs)


def test_a_few_queries_run_on_one_thread_answer_as_in_a_batch_and_leave_faiss_threads_as_they_were():
    faiss = pytest.importorskip("faiss")
    v = _vectors()
    index = ann.build_ivf(v)
    threads = faiss.omp_get_max_threads()
    batch = ann.query_topk(v, v[:ann.FEW_QUERIES + 10], 5, method="ivf", index=index)
    for r in (0, 1, 2, 3):
        one = ann.query_topk(v, v[r:r + 1], 5, method="ivf", index=index)
        assert np.array_equal(one[0][0], batch[0][r]) and np.allclose(one[1][0], batch[1][r])
        assert faiss.omp_get_max_threads() == threads
