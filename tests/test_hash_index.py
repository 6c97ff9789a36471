"""maya.hashing.index: radius search equals brute force, on random, clustered and degenerate hashes."""

import numpy as np
import pytest

import maya.hashing.index as hash_index
from maya.hashing.index import pairs_within, query_within


def brute_pairs(h, radius):
    """Reference: every pair i < j by a full N x N popcount matrix."""
    h = np.asarray(h, dtype=np.uint64)
    d = np.bitwise_count(h[:, None] ^ h[None, :])
    i, j = np.nonzero(np.triu(d <= radius, k=1))
    return i, j, d[i, j]


def brute_query(index, query, radius):
    d = np.bitwise_count(np.asarray(query, np.uint64)[:, None] ^ np.asarray(index, np.uint64)[None, :])
    qi, ii = np.nonzero(d <= radius)
    return qi, ii, d[qi, ii]


def flips(rng, n, max_flips):
    """n random masks, each with 0..max_flips distinct bits set."""
    k = rng.integers(0, max_flips + 1, size=n)
    order = np.argsort(rng.random((n, 64)), axis=1).astype(np.uint64)
    bits = np.where(np.arange(64)[None, :] < k[:, None], np.uint64(1) << order, np.uint64(0))
    return np.bitwise_or.reduce(bits, axis=1)


def clustered(n, seed, near_copy_fraction=0.3, max_flips=8):
    """Random base hashes plus near-copies (0..max_flips bits flipped), exact duplicates and zeros."""
    rng = np.random.default_rng(seed)
    n_copy = int(n * near_copy_fraction)
    base = rng.integers(0, 2**64, size=n - n_copy, dtype=np.uint64)
    copies = base[rng.integers(0, base.size, n_copy)] ^ flips(rng, n_copy, max_flips)
    h = np.concatenate([base, copies])
    h[:40] = 0  # flat images
    h[40:60] = h[100]  # exact duplicates
    h[60:70] = 1  # within 1 bit of the zeros
    return h[rng.permutation(n)]


def assert_same(got, expected):
    assert [a.dtype for a in got] == [np.int64, np.int64, np.uint8]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


RADII = [0, 1, 2, 3, 5, 8, 10, 16]


@pytest.mark.parametrize("radius", RADII)
@pytest.mark.parametrize("kind", ["random", "clustered"])
def test_pairs_within_equals_brute_force(kind, radius):
    rng = np.random.default_rng(radius)
    h = rng.integers(0, 2**64, 1500, dtype=np.uint64) if kind == "random" else clustered(1500, radius)
    expected = brute_pairs(h, radius)
    if kind == "clustered":
        assert expected[0].size > 500  # the data really has near pairs
    for method in ("auto", "index", "brute"):
        assert_same(pairs_within(h, radius, method=method), expected)


@pytest.mark.parametrize("radius", [0, 1, 2, 4, 8, 11])
def test_every_substring_layout_gives_the_same_pairs(radius):
    # m = radius + 1 (exact match on a substring), few long substrings (probe radius >= 2),
    # and layouts where some substrings are not probed at all (probe radius -1).
    h = clustered(800, 100 + radius)
    expected = brute_pairs(h, radius)
    for m in range(3, max(3, min(radius + 1, 12)) + 1):
        assert_same(pairs_within(h, radius, method="index", substrings=m), expected)


@pytest.mark.parametrize("radius", [0, 3, 8, 12])
def test_query_within_equals_brute_force(radius):
    rng = np.random.default_rng(radius)
    index = clustered(1200, 7 + radius)
    query = np.concatenate([
        index[rng.integers(0, index.size, 150)] ^ flips(rng, 150, 10),  # near an indexed hash
        rng.integers(0, 2**64, 100, dtype=np.uint64),  # far from everything
        np.zeros(5, np.uint64),  # repeated query, many repeated index matches
        index[:5],
    ])
    expected = brute_query(index, query, radius)
    for method in ("auto", "index", "brute"):
        assert_same(query_within(index, query, radius, method=method), expected)
    assert_same(query_within(index, query, radius, method="index", substrings=3), expected)


def test_identical_hashes_expand_to_all_their_pairs():
    h = np.zeros(1000, np.uint64)
    h[500] = 3  # two bits from all the zeros
    i, j, d = pairs_within(h, 1)
    assert i.size == 999 * 998 // 2 and np.all(d == 0) and 500 not in set(i) | set(j)
    i, j, d = pairs_within(h, 2)
    assert i.size == 1000 * 999 // 2 and int(d.sum()) == 2 * 999
    assert np.all(i < j) and np.all(np.diff(i * 1000 + j) > 0)  # sorted by (i, j), no repeats


@pytest.mark.slow
def test_crowded_buckets_are_joined_recursively(monkeypatch):
    # Low-entropy hashes: only 24 bits vary, so substrings share values across thousands of
    # hashes. With a tiny huge-bucket limit those bucket pairs go through the recursive join.
    rng = np.random.default_rng(3)
    free = np.uint64(0x0000_F0F0_0FF0_00FF)  # 24 varying bits
    h = rng.integers(0, 2**64, 3000, dtype=np.uint64) & free
    h = np.concatenate([h, rng.integers(0, 2**64, 300, dtype=np.uint64)])
    calls = []
    original = hash_index._recurse_bucket_pair
    monkeypatch.setattr(hash_index, "HUGE_BUCKET_PAIRS", 64)
    monkeypatch.setattr(hash_index, "_recurse_bucket_pair",
                        lambda *a, **k: (calls.append(1), original(*a, **k))[1])
    for radius in (1, 3, 6):
        expected = brute_pairs(h, radius)
        assert_same(pairs_within(h, radius, method="index", substrings=4), expected)
        index, query = h[:2000], h[2000:]
        assert_same(query_within(index, query, radius, method="index", substrings=4),
                    brute_query(index, query, radius))
    assert calls, "the recursive join was not exercised"


@pytest.mark.slow
def test_small_chunks_and_threads_do_not_change_the_result(monkeypatch):
    monkeypatch.setattr(hash_index, "_MIN_THREADED_SECONDS", 0.0)  # use threads even on small input
    h = clustered(2000, 11)
    expected = brute_pairs(h, 8)
    for chunk in (1, 7, 1000):
        assert_same(pairs_within(h, 8, method="index", candidates_per_chunk=chunk, workers=2), expected)
    assert_same(pairs_within(h, 8, method="index", workers=1), expected)
    assert_same(pairs_within(h, 8, method="brute", candidates_per_chunk=5), expected)


def test_index_verifies_far_fewer_candidates_than_all_pairs(monkeypatch):
    n = 60_000
    h = clustered(n, 5)
    seen = []
    original = hash_index._Verifier.add_sorted
    monkeypatch.setattr(hash_index._Verifier, "add_sorted",
                        lambda self, qb, ib, p, b: (seen.append(p.size), original(self, qb, ib, p, b))[1])
    i, j, d = pairs_within(h, 8)
    assert 0 < sum(seen) < 0.005 * n * (n - 1) / 2  # measured: 0.27%
    # all planted near-copies are found; every reported distance is right
    assert np.array_equal(d, np.bitwise_count(h[i] ^ h[j]))
    assert i.size >= int(0.3 * n) and d.max() <= 8


@pytest.mark.slow
def test_200k_clustered_hashes_match_brute_force_on_sampled_rows():
    n, radius = 200_000, 8
    h = clustered(n, 21)
    i, j, d = pairs_within(h, radius)
    rows = np.random.default_rng(0).choice(n, 300, replace=False)
    qi, ii, dd = brute_query(h, h[rows], radius)
    expected = {(min(r, c), max(r, c)) for r, c in zip(rows[qi], ii) if r != c}
    sampled = set(rows.tolist())
    found = {(a, b) for a, b in zip(i.tolist(), j.tolist()) if a in sampled or b in sampled}
    assert found == expected and len(expected) > 50


def test_inputs_and_edge_cases():
    assert all(a.size == 0 for a in pairs_within(np.zeros(0, np.uint64), 3))
    assert all(a.size == 0 for a in pairs_within(np.array([5], np.uint64), 3))
    assert all(a.size == 0 for a in query_within(np.zeros(0, np.uint64), np.array([1], np.uint64), 3))
    # radius >= 64: everything is a pair
    h = np.random.default_rng(1).integers(0, 2**64, 50, dtype=np.uint64)
    assert pairs_within(h, 64)[0].size == 50 * 49 // 2
    # plain Python ints and lists are accepted
    i, j, d = pairs_within([0, 1, 3, 2**63], 1)
    assert list(zip(i.tolist(), j.tolist(), d.tolist())) == [(0, 1, 1), (0, 3, 1), (1, 2, 1)]
    with pytest.raises(ValueError):
        pairs_within(h, -1)
    with pytest.raises(ValueError):
        pairs_within(h, 2.5)
    with pytest.raises(ValueError):
        pairs_within(h.reshape(5, 10), 2)
    for bad in (np.array([-1, 2]), [-1, 2], [1.5, 2], np.array([1.0, 2.0]), [2**64]):
        with pytest.raises(ValueError):
            pairs_within(bad, 2)
    with pytest.raises(ValueError):
        pairs_within(h, 2, method="faiss")
    with pytest.raises(ValueError):
        pairs_within(h, 8, method="index", substrings=2)  # 32-bit substrings: table too large
