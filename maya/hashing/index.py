"""Radius search over 64-bit hashes without comparing all N^2 pairs: multi-index hashing.

Both entry points are **exact**: they return every pair within the radius, and only those
(the tests compare them with brute force). Time is output-sensitive, not quadratic.

Method (Norouzi, Punjani & Fleet, "Fast exact search in Hamming space with multi-index hashing",
TPAMI 2014):

1. Identical hashes are collapsed first (``np.unique``): flat images all hash to 0, exact copies
   share a hash, and a bucket of k identical hashes would otherwise cost k^2 candidate pairs.
   The pairs inside and between groups of identical hashes are expanded at the very end.
2. The bits are cut into m substrings. Write ``radius = m*q + a`` (0 <= a < m). By the pigeonhole
   principle two hashes within ``radius`` are within ``q`` of each other on one of the first a+1
   substrings, or within ``q-1`` on one of the others. (m = radius+1 gives q = 0: an exact match on
   one substring.) m is chosen per call with a cost model: few long substrings mean many probes
   per hash but almost-empty buckets; many short ones mean few probes but crowded buckets. For
   radius 8 that is m=3 (21-22 bit substrings, probe radius 2) near 1M hashes, m=4 near 100k.
3. Per substring, hashes are bucketed by a counting sort into dense tables indexed by the
   substring value (substrings are at most ``MAX_TABLE_BITS`` bits), and every hash looks up the
   buckets of its substring XOR each mask of popcount <= the probe radius: a byte table says
   whether the bucket is empty, a second holds 32 other bits of its first hash, so the usual
   bucket of one hash costs two lookups. Candidates are verified with popcount on all 64 bits. A pair is kept only
   by the first substring whose condition it meets, so no pair comes out twice and no global
   de-duplication sort is needed. In a self-join each unordered pair is probed once, from the
   hash whose substring value is smaller. Masks are probed by ``workers`` threads (numpy releases
   the GIL); the result does not depend on the number of threads.
4. Memory stays bounded: O(N) per thread, the tables of one substring (at most 2**22 entries,
   52 MiB), and candidates expanded and verified in chunks of at most ``candidates_per_chunk``
   (plus the output itself). A pair of buckets whose product exceeds ``HUGE_BUCKET_PAIRS``
   (skewed data: many distinct hashes sharing a substring) is not expanded: its two buckets are
   joined recursively on the remaining bits, which the cost model again searches the cheap way.
5. Where the cost model says brute force is cheaper (small inputs, radius near 64), chunked
   brute force (XOR + popcount over blocks) is used instead.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from itertools import combinations
from math import comb

import numpy as np

HASH_BITS = 64
MAX_TABLE_BITS = 22  # longest substring: its tables have 2**22 entries (4M x 13 bytes = 52 MiB)
DEFAULT_CANDIDATES_PER_CHUNK = 1 << 21
HUGE_BUCKET_PAIRS = 1 << 20  # bucket pairs with more candidate pairs than this are recursed into
_SMALL_BUCKET = 16  # buckets up to this size are scanned offset by offset, larger ones expanded

# Cost model, in seconds per unit, measured on a 2-core AMD EPYC (numpy 2.4). Only their ratios
# matter: they decide substring count m and brute force vs. index, not correctness.
_COST_PROBE = 2.2e-9  # one hash x one mask: xor, compare, gather bucket size
_COST_CANDIDATE = 7e-9  # one candidate pair: expand, gather both hashes, xor, popcount
_COST_MASK = 6e-5  # Python + numpy call overhead per (substring, mask)
_COST_TABLE = 2e-9  # per dense-table entry (bincount, cumsum)
_COST_BRUTE = 2e-9  # one pair in chunked brute force
_MIN_THREADED_SECONDS = 0.05  # estimated work below which one thread is used

_I64 = np.int64


# --------------------------------------------------------------------------------------------
# public API


def pairs_within(
    hashes: np.ndarray,
    radius: int,
    *,
    method: str = "auto",
    substrings: int | None = None,
    candidates_per_chunk: int = DEFAULT_CANDIDATES_PER_CHUNK,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs ``i < j`` with ``hamming(hashes[i], hashes[j]) <= radius``; exact.

    Args:
        hashes: (N,) 64-bit hashes (uint64, or anything ``np.asarray(..., np.uint64)`` takes).
        radius: maximum Hamming distance, in bits (>= 0).
        method: ``"auto"`` (cost model), ``"index"`` (multi-index hashing at the top level) or
            ``"brute"`` (chunked brute force). All give the same pairs.
        substrings: force the number m of substrings (``"index"``/``"auto"``); None: cost model.
        candidates_per_chunk: bound on candidate pairs held in memory at once (per thread).
        workers: threads probing in parallel (numpy releases the GIL); None: one per CPU core.
            The result does not depend on it.

    Returns:
        ``(i, j, d)``: int64 (P,), int64 (P,), uint8 (P,) distances in bits; sorted by (i, j).
        P can reach N*(N-1)/2 when many hashes are close: the output itself is not bounded.
    """
    h = _as_hashes(hashes)
    radius = _check_radius(radius)
    uniq, inverse, counts = np.unique(h, return_inverse=True, return_counts=True)
    ua, ub, d = _join(uniq, uniq, radius, HASH_BITS, True, method, substrings,
                      candidates_per_chunk, _workers(workers))
    return _expand_self(h.size, inverse, counts, ua, ub, d)


def query_within(
    index_hashes: np.ndarray,
    query_hashes: np.ndarray,
    radius: int,
    *,
    method: str = "auto",
    substrings: int | None = None,
    candidates_per_chunk: int = DEFAULT_CANDIDATES_PER_CHUNK,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (query, index) pairs with ``hamming(query_hashes[qi], index_hashes[ii]) <= radius``; exact.

    Args:
        index_hashes: (N,) 64-bit hashes searched in.
        query_hashes: (Q,) 64-bit hashes searched for.
        radius, method, substrings, candidates_per_chunk, workers: as in :func:`pairs_within`.

    Returns:
        ``(qi, ii, d)``: int64 (P,) positions in ``query_hashes``, int64 (P,) positions in
        ``index_hashes``, uint8 (P,) distances in bits; sorted by (qi, ii).
    """
    index = _as_hashes(index_hashes)
    query = _as_hashes(query_hashes)
    radius = _check_radius(radius)
    iu, iinv, icount = np.unique(index, return_inverse=True, return_counts=True)
    qu, qinv, qcount = np.unique(query, return_inverse=True, return_counts=True)
    qa, ib, d = _join(iu, qu, radius, HASH_BITS, False, method, substrings,
                      candidates_per_chunk, _workers(workers))
    qi, ii, d = _expand_cross((*_group_members(qinv, qcount), qcount),
                              (*_group_members(iinv, icount), icount), qa, ib, d)
    return _sorted_pairs(qi, ii, d, index.size)


# --------------------------------------------------------------------------------------------
# input checks and expansion of identical hashes


def _as_hashes(hashes) -> np.ndarray:
    if not isinstance(hashes, np.ndarray):  # a list of Python ints: never via float64
        values = np.asarray(hashes, dtype=object).ravel()
        if not all(isinstance(v, (int, np.integer)) and 0 <= v < 1 << 64 for v in values):
            raise ValueError("hashes must be non-negative 64-bit integers")
        hashes = np.asarray(hashes, dtype=np.uint64)
    h = hashes
    if h.dtype != np.uint64:
        if h.dtype.kind not in "iuO":  # floats would silently lose bits
            raise ValueError(f"hashes must be 64-bit integers, got dtype {h.dtype}")
        if h.dtype.kind in "iO" and h.size and h.min() < 0:
            raise ValueError("hashes must be non-negative 64-bit integers")
        h = h.astype(np.uint64)
    if h.ndim != 1:
        raise ValueError(f"hashes must be one-dimensional, got shape {h.shape}")
    return h


def _workers(workers: int | None) -> int:
    if workers is None:
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return int(workers)


def _check_radius(radius) -> int:
    r = int(radius)
    if r != radius or r < 0:
        raise ValueError(f"radius must be a non-negative integer, got {radius!r}")
    return r


def _ragged_arange(lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(n) for n in lengths: [0..l0-1, 0..l1-1, ...]."""
    total = int(lengths.sum())
    ends = np.cumsum(lengths)
    return np.arange(total, dtype=_I64) - np.repeat(ends - lengths, lengths)


def _stable_sort_small_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable argsort of non-negative keys < 2**31 (len < 2**32): (order int64, sorted keys int32).

    Sorting ``key << 32 | position`` as one int64 is ~15x faster than a stable argsort.
    """
    packed = np.sort((keys.astype(_I64) << 32) | np.arange(keys.size, dtype=_I64))
    return packed & 0xFFFFFFFF, (packed >> 32).astype(np.int32)


def _group_members(inverse: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Items sorted by group (ascending item index within a group) and each group's start."""
    members, _ = _stable_sort_small_keys(inverse)
    starts = np.cumsum(counts) - counts
    return members, starts


def _expand_cross(a_groups, b_groups, ga, gb, d):
    """Group pairs (ga, gb) -> all item pairs between the two groups' members.

    ``a_groups`` / ``b_groups``: (members, starts, counts) from :func:`_group_members`.
    """
    amem, astart, acount = a_groups
    bmem, bstart, bcount = b_groups
    if amem.size == acount.size and bmem.size == bcount.size:  # no repeated hash
        return amem[ga], bmem[gb], d
    na = acount[ga]
    nb = bcount[gb]
    sizes = na * nb
    k = _ragged_arange(sizes)
    pair = np.repeat(np.arange(ga.size), sizes)
    x, y = np.divmod(k, nb[pair])
    return amem[astart[ga[pair]] + x], bmem[bstart[gb[pair]] + y], d[pair]


def _expand_self(n, inverse, counts, ua, ub, d):
    """Unique-hash pairs -> item pairs, plus pairs inside each group of identical hashes."""
    members, starts = _group_members(inverse, counts)
    groups = (members, starts, counts)
    i, j, dist = _expand_cross(groups, groups, ua, ub, d)
    if members.size > counts.size:
        # element at rank t of a group of size c pairs with ranks t+1 .. c-1
        rank = _ragged_arange(counts)
        group = np.repeat(np.arange(counts.size), counts)
        later = counts[group] - rank - 1
        first = np.repeat(np.arange(n, dtype=_I64), later)  # position in `members`
        second = first + 1 + _ragged_arange(later)
        i = np.concatenate([i, members[first]])
        j = np.concatenate([j, members[second]])
        dist = np.concatenate([dist, np.zeros(first.size, np.uint8)])
    lo = np.minimum(i, j)
    hi = np.maximum(i, j)
    return _sorted_pairs(lo, hi, dist, n)


def _sorted_pairs(a, b, d, n_b):
    a = np.asarray(a, dtype=_I64)
    b = np.asarray(b, dtype=_I64)
    order = np.argsort(a * max(n_b, 1) + b, kind="stable")
    return a[order], b[order], np.asarray(d, dtype=np.uint8)[order]


# --------------------------------------------------------------------------------------------
# the join over distinct hashes


def _join(index_u, query_u, radius, nbits, self_join, method, substrings, chunk, workers):
    """Pairs between distinct hashes of ``nbits`` bits (values < 2**nbits) within ``radius``.

    Self-join: ``index_u is query_u``; returns each unordered pair once (either order).
    Returns (query position, index position, distance uint8).
    """
    empty = (np.zeros(0, _I64), np.zeros(0, _I64), np.zeros(0, np.uint8))
    if index_u.size == 0 or query_u.size == 0 or (self_join and index_u.size < 2):
        return empty
    if method not in ("auto", "index", "brute"):
        raise ValueError(f"method must be 'auto', 'index' or 'brute', got {method!r}")
    if method == "brute" or radius >= nbits:
        return _brute_join(index_u, query_u, radius, self_join, chunk)
    plans = _plans(nbits, radius, index_u.size, query_u.size, self_join, substrings)
    if not plans:
        return _brute_join(index_u, query_u, radius, self_join, chunk)
    cost, layout = min(plans)
    if method == "auto":
        pairs = index_u.size * query_u.size / (2 if self_join else 1)
        if pairs * _COST_BRUTE <= cost:
            return _brute_join(index_u, query_u, radius, self_join, chunk)
    if cost < _MIN_THREADED_SECONDS:
        workers = 1  # starting threads would cost more than they save
    return _index_join(index_u, query_u, radius, layout, self_join, chunk, workers)


def _brute_join(index_u, query_u, radius, self_join, chunk):
    """Chunked brute force: XOR + popcount of blocks of queries against the whole index."""
    n = index_u.size
    block = max(1, chunk // max(n, 1))
    out_q, out_i, out_d = [], [], []
    for start in range(0, query_u.size, block):
        q = query_u[start : start + block]
        if self_join:
            # only columns j > i: start the columns at the block's first row
            cols = index_u[start:]
            d = np.bitwise_count(q[:, None] ^ cols[None, :])
            qi, cj = np.nonzero(d <= radius)
            keep = cj > qi
            qi, cj = qi[keep], cj[keep]
            out_q.append(qi + start)
            out_i.append(cj + start)
            out_d.append(d[qi, cj])
        else:
            d = np.bitwise_count(q[:, None] ^ index_u[None, :])
            qi, cj = np.nonzero(d <= radius)
            out_q.append(qi + start)
            out_i.append(cj)
            out_d.append(d[qi, cj])
    return (
        np.concatenate(out_q).astype(_I64),
        np.concatenate(out_i).astype(_I64),
        np.concatenate(out_d).astype(np.uint8),
    )


def _layout(nbits: int, m: int) -> list[tuple[int, int]]:
    """m contiguous substrings covering bits [0, nbits): (shift, length), longest first."""
    base, extra = divmod(nbits, m)
    lengths = [base + 1] * extra + [base] * (m - extra)
    out, top = [], nbits
    for length in lengths:
        top -= length
        out.append((top, length))
    return out


def _probe_radii(m: int, radius: int) -> list[int]:
    """Per-substring probe radius; -1 means the substring is not probed (see module doc)."""
    q, a = divmod(radius, m)
    return [q] * (a + 1) + [q - 1] * (m - a - 1)


def _plans(nbits, radius, n_index, n_query, self_join, substrings):
    """(estimated seconds, [(shift, length, probe radius), ...]) for each feasible m."""
    lo = -(-nbits // MAX_TABLE_BITS)
    hi = max(lo, min(nbits, radius + 1))  # m > radius+1 leaves substrings unprobed: no gain
    ms = [substrings] if substrings is not None else range(lo, hi + 1)
    plans = []
    for m in ms:
        if not lo <= m <= nbits:
            raise ValueError(f"substrings must be in [{lo}, {nbits}] for {nbits}-bit hashes, got {m}")
        layout = [(s, L, p) for (s, L), p in zip(_layout(nbits, m), _probe_radii(m, radius))]
        masks = sum(_n_masks(L, p) for _, L, p in layout if p >= 0)
        candidates = sum(_n_masks(L, p) * n_index / 2.0**L for _, L, p in layout if p >= 0)
        tables = sum(2**L + n_index for _, L, p in layout if p >= 0)
        if self_join:
            candidates /= 2  # each unordered pair is probed from one side only
        cost = (
            n_query * (masks * _COST_PROBE + candidates * _COST_CANDIDATE)
            + masks * _COST_MASK
            + tables * _COST_TABLE
        )
        plans.append((cost, layout))
    return plans


def _n_masks(length: int, radius: int) -> int:
    return sum(comb(length, t) for t in range(radius + 1))


@lru_cache(maxsize=256)
def _masks(length: int, radius: int) -> tuple[int, ...]:
    """All length-bit integers with popcount <= radius, 0 first."""
    out = []
    for t in range(radius + 1):
        for bits in combinations(range(length), t):
            out.append(sum(1 << b for b in bits))
    return tuple(out)


def _without_substring(values: np.ndarray, shift: int, length: int) -> np.ndarray:
    """Drop bits [shift, shift+length) and pack the remaining bits low. For two hashes whose
    substrings differ by a known number of bits, the distance on the rest is the remainder."""
    low = values & np.uint64((1 << shift) - 1)
    high = values >> np.uint64(shift + length)
    return (high << np.uint64(shift)) | low


class _Buckets:
    """Hashes bucketed by one substring: a counting sort on a dense table of 2**length entries.

    ``hashes``, ``sub`` and ``order`` are in sorted-substring order; ``order`` maps a sorted
    position back to the caller's position. Bucket v holds sorted positions
    ``span[v] >> 32`` (start) onwards, ``span[v] & 0xFFFFFFFF`` (count) of them. ``count8`` (counts
    capped at 255) and ``first_rest32`` (32 bits from outside the substring of the bucket's first
    hash) serve the common case, a bucket of one hash, with two small-table lookups.
    """

    def __init__(self, values: np.ndarray, shift: int, length: int):
        sub = ((values >> np.uint64(shift)) & np.uint64((1 << length) - 1)).astype(_I64)
        self.order, self.sub = _stable_sort_small_keys(sub)
        self.hashes = values[self.order]
        counts = np.bincount(self.sub, minlength=1 << length)
        starts = np.cumsum(counts) - counts
        self.span = (starts << 32) | counts
        self.count8 = np.minimum(counts, 255).astype(np.uint8)  # small table: cheap probe
        # 32 of the bits outside the substring, of each hash and of each bucket's first hash
        self.rest32 = _without_substring(self.hashes, shift, length).astype(np.uint32)
        self.first_rest32 = np.zeros(1 << length, dtype=np.uint32)
        run_starts = np.flatnonzero(np.diff(self.sub, prepend=-1))
        self.first_rest32[self.sub[run_starts]] = self.rest32[run_starts]
        self.largest = int(counts.max())

    def count(self, values: np.ndarray) -> np.ndarray:
        return np.take(self.span, values) & 0xFFFFFFFF

    def members(self, value: int) -> np.ndarray:
        """Caller positions of the hashes in bucket ``value``."""
        span = int(self.span[value])
        return self.order[span >> 32 : (span >> 32) + (span & 0xFFFFFFFF)]


class _Verifier:
    """Checks candidate pairs: full distance <= radius, and no earlier substring claims them.

    One per unit of work (thread); results are concatenated at the end.
    """

    def __init__(self, index_u, query_u, radius, layout, k):
        self.index_u = index_u
        self.query_u = query_u
        self.radius = radius
        self.earlier = [(s, L, p) for s, L, p in layout[:k] if p >= 0]
        self.found = []

    def add(self, q, i):
        """Candidates as caller positions (query q, index i)."""
        self.keep(self.query_u[q] ^ self.index_u[i], q, i)

    def add_sorted(self, qb: _Buckets, ib: _Buckets, p, b):
        """Candidates as sorted positions p (in qb) and b (in ib)."""
        x = np.take(qb.hashes, p) ^ np.take(ib.hashes, b)
        keep = np.flatnonzero(np.bitwise_count(x) <= self.radius)
        if keep.size:
            self.keep(x[keep], qb.order[p[keep]], ib.order[b[keep]])

    def keep(self, x, q, i):
        """Keep the pairs (q, i) with XOR ``x`` that pass both checks."""
        d = np.bitwise_count(x)
        ok = d <= self.radius
        for shift, length, probe in self.earlier:
            sub = (x >> np.uint64(shift)) & np.uint64((1 << length) - 1)
            ok &= np.bitwise_count(sub) > probe
        keep = np.flatnonzero(ok)
        if keep.size:
            self.found.append((q[keep], i[keep], d[keep]))


def _concat_found(found):
    if not found:
        return np.zeros(0, _I64), np.zeros(0, _I64), np.zeros(0, np.uint8)
    q, i, d = zip(*found)
    return (
        np.concatenate(q).astype(_I64),
        np.concatenate(i).astype(_I64),
        np.concatenate(d).astype(np.uint8),
    )


def _index_join(index_u, query_u, radius, layout, self_join, chunk, workers):
    nbits = sum(length for _, length, _ in layout)
    found = []
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        for k, (shift, length, probe) in enumerate(layout):
            if probe < 0:
                continue
            ib = _Buckets(index_u, shift, length)
            qb = ib if self_join else _Buckets(query_u, shift, length)
            ctx = (index_u, query_u, radius, layout, k, shift, length, nbits, qb, ib, chunk)
            units = list(_probe_units(_masks(length, probe), self_join, workers))
            if pool is None:
                results = [_probe(ctx, *unit) for unit in units]
            else:
                results = list(pool.map(lambda unit: _probe(ctx, *unit), units))
            for r in results:
                found.extend(r)
    finally:
        if pool is not None:
            pool.shutdown()
    return _concat_found(found)


def _probe_units(masks, self_join: bool, workers: int):
    """Units of probing work: (masks, bit), probed from the hashes whose substring has ``bit``
    clear, or from all hashes when ``bit`` is None.

    In a self-join a pair whose substrings differ by ``mask`` is probed only from the hash whose
    value has the mask's highest bit clear (the smaller value), which halves the work; a unit
    holds the masks sharing a highest bit, so that selection is made once per unit. Mask 0 in a
    self-join is the unit ``((0,), None)``: pairs within a bucket.
    """
    nonzero = [m for m in masks if m]
    if self_join:
        if masks[0] == 0:
            yield (0,), None
        by_top_bit: dict[int, list[int]] = {}
        for mask in nonzero:
            by_top_bit.setdefault(mask.bit_length() - 1, []).append(mask)
        for bit, group in sorted(by_top_bit.items(), key=lambda kv: -len(kv[1])):
            yield tuple(group), bit
    else:
        if masks[0] == 0:
            nonzero = [0] + nonzero
        n_units = max(1, min(len(nonzero), 4 * workers))
        for u in range(n_units):
            yield tuple(nonzero[u::n_units]), None


def _probe(ctx, masks, bit):
    """Probe one unit of :func:`_probe_units`; returns the pairs found."""
    index_u, query_u, radius, layout, k, shift, length, nbits, qb, ib, chunk = ctx
    verifier = _Verifier(index_u, query_u, radius, layout, k)
    self_join = qb is ib
    if self_join and masks == (0,):
        _same_bucket(verifier, ib, radius, shift, length, nbits, chunk)
        return verifier.found
    if bit is None:
        positions, subs = None, qb.sub
    else:
        positions = np.flatnonzero((qb.sub & np.int32(1 << bit)) == 0)
        subs = qb.sub[positions]
    may_be_huge = ib.largest * qb.largest > HUGE_BUCKET_PAIRS
    for mask in masks:
        target = subs ^ np.int32(mask)
        small_count = np.take(ib.count8, target)
        hit = np.flatnonzero(small_count)
        if hit.size == 0:
            continue
        p = hit if positions is None else np.take(positions, hit)
        t = np.take(target, hit)
        if may_be_huge:
            span = np.take(ib.span, t)
            start, cnt = span >> 32, span & 0xFFFFFFFF
            own = np.take(qb.sub, p)
            huge = qb.count(own) * cnt > HUGE_BUCKET_PAIRS
            if huge.any():
                for value in np.unique(own[huge]):
                    _recurse_bucket_pair(verifier, index_u, query_u, radius, shift, length, nbits,
                                         qb.members(int(value)), ib.members(int(value) ^ mask),
                                         chunk)
                keep = np.flatnonzero(~huge)
                p, start, cnt = p[keep], start[keep], cnt[keep]
            _verify_ranges(verifier, qb, ib, p, start, cnt, chunk)
            continue
        # Most hit buckets hold one hash. Filter each query against its bucket's first hash on 32
        # bits outside the substring (whose distance is popcount(mask)), read from a dense table;
        # verify the few that pass on all 64 bits; then the rest of the larger buckets.
        rest = np.take(qb.rest32, p) ^ np.take(ib.first_rest32, t)
        close = np.flatnonzero(np.bitwise_count(rest) <= radius - mask.bit_count())
        if close.size:
            first = np.take(ib.span, t[close]) >> 32
            pc = p[close]
            x = np.take(qb.hashes, pc) ^ np.take(ib.hashes, first)
            verifier.keep(x, qb.order[pc], ib.order[first])
        more = np.flatnonzero(np.take(small_count, hit) > 1)
        if more.size:
            span = np.take(ib.span, t[more])
            _verify_ranges(verifier, qb, ib, p[more], (span >> 32) + 1, (span & 0xFFFFFFFF) - 1,
                           chunk)
    return verifier.found


def _verify_ranges(verifier, qb, ib, p, start, cnt, chunk):
    """Query at sorted position p[t] against index sorted positions start[t] .. start[t]+cnt[t]-1."""
    if cnt.size == 0:
        return
    if cnt.max() > _SMALL_BUCKET:
        big = np.flatnonzero(cnt > _SMALL_BUCKET)
        _verify_ranges_ragged(verifier, qb, ib, p[big], start[big], cnt[big], chunk)
        small = np.flatnonzero(cnt <= _SMALL_BUCKET)
        p, start, cnt = p[small], start[small], cnt[small]
    # Buckets are mostly of size 1-3: step through offsets 0, 1, ... instead of expanding.
    offset = 0
    while p.size:
        for lo in range(0, p.size, chunk):
            verifier.add_sorted(qb, ib, p[lo : lo + chunk], start[lo : lo + chunk] + offset)
        offset += 1
        more = np.flatnonzero(cnt > offset)
        p, start, cnt = np.take(p, more), np.take(start, more), np.take(cnt, more)


def _verify_ranges_ragged(verifier, qb, ib, p, start, cnt, chunk):
    """As _verify_ranges, for large buckets: expand (query, index) pairs in bounded chunks."""
    ends = np.cumsum(cnt)
    lo = 0
    while lo < cnt.size:
        # take items until the chunk holds `chunk` candidates (at least one item)
        base = int(ends[lo - 1]) if lo else 0
        hi = max(lo + 1, int(np.searchsorted(ends, base + chunk, side="right")))
        c = cnt[lo:hi]
        verifier.add_sorted(qb, ib, np.repeat(p[lo:hi], c),
                            np.repeat(start[lo:hi], c) + _ragged_arange(c))
        lo = hi


def _same_bucket(verifier, b: _Buckets, radius, shift, length, nbits, chunk):
    """Self-join, mask 0: pairs of hashes sharing this substring value, each pair once."""
    # sorted position p pairs with the later positions of its bucket
    p = np.flatnonzero(b.sub[1:] == b.sub[:-1])
    if p.size == 0:
        return
    value = b.sub[p]
    span = np.take(b.span, value)
    start, size = span >> 32, span & 0xFFFFFFFF
    if b.largest * (b.largest - 1) // 2 > HUGE_BUCKET_PAIRS:
        huge = size * (size - 1) // 2 > HUGE_BUCKET_PAIRS
        for v in np.unique(value[huge]):
            members = b.members(int(v))
            rest = _without_substring(verifier.index_u[members], shift, length)
            a, c, _ = _join(rest, rest, radius, nbits - length, True, "auto", None, chunk, 1)
            verifier.add(members[a], members[c])
        keep = np.flatnonzero(~huge)
        p, start, size = p[keep], start[keep], size[keep]
    _verify_ranges(verifier, b, b, p, p + 1, start + size - p - 1, chunk)


def _recurse_bucket_pair(verifier, index_u, query_u, radius, shift, length, nbits, q_items,
                         i_items, chunk):
    """Join one crowded (query bucket, index bucket) pair on the bits outside the substring."""
    q_rest = _without_substring(query_u[q_items], shift, length)
    i_rest = _without_substring(index_u[i_items], shift, length)
    q_sub = (int(query_u[q_items[0]]) >> shift) & ((1 << length) - 1)
    i_sub = (int(index_u[i_items[0]]) >> shift) & ((1 << length) - 1)
    rest_radius = radius - bin(q_sub ^ i_sub).count("1")
    a, b, _ = _join(i_rest, q_rest, rest_radius, nbits - length, False, "auto", None, chunk, 1)
    verifier.add(q_items[a], i_items[b])
