"""Groups that do not chain: stars around hubs, every member a direct near-duplicate of the kept file.

Connected components of accepted pairs chain: A~B and B~C put A and C in one group however far apart they
are, and in a folder of many similar but distinct pictures (a photo series, textures, scans of one form)
a few wrong edges merge whole clusters (issue 13: one group of 814 of 846 files). Here a group is a star:

1. Items are taken in order of their number of accepted pairs (degree; then the sum of the pairs'
   strengths; then the keep rank). An original with k edited copies is accepted with all k of them, while a
   copy is usually accepted with fewer, so the hub comes first.
2. An item not yet in a group becomes a centre; its accepted neighbours not yet in a group join it. So
   every member is accepted *directly* with the centre; a chain of weak edges ends at its first link.
3. The file kept is the best-ranked member (the keep rule) that is accepted directly with every other
   member; the centre always is, so the invariant "each member is a near-duplicate of the kept file" holds.

Measured on collection benchmarks (benchmarks/bench_collection.py): see README "Collection benchmark".
Costs O(pairs) plus one rule check per (candidate keeper, member).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Accepts = Callable[[np.ndarray, np.ndarray], np.ndarray]


def star_groups(n: int, a: np.ndarray, b: np.ndarray, strength: np.ndarray, *, rank: np.ndarray,
                accepts: Accepts | None = None) -> list[tuple[np.ndarray, int, tuple[int, int, float] | None]]:
    """Star groups of ``n`` items from accepted pairs ``a[k] -- b[k]`` (strength: higher is closer).

    Returns ``(items, keeper, weakest)`` per group of two or more items: ``items`` keeper first, then
    ascending; ``weakest`` = ``(keeper, member, strength)`` of the member least close to the keeper.
    ``accepts(x, y)``: the rule on item pairs (None: the centre is kept).
    """
    from scipy.sparse import coo_matrix

    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    strength = np.asarray(strength, dtype=np.float64)
    rank = np.asarray(rank, dtype=np.int64)
    if a.size == 0:
        return []
    rows = np.concatenate([a, b])
    cols = np.concatenate([b, a])
    vals = np.concatenate([strength, strength])
    adj = coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
    adj.sum_duplicates()
    degree = np.diff(adj.indptr)
    total = np.asarray(adj.sum(axis=1)).ravel()
    active = np.flatnonzero(degree > 0)
    order = active[np.lexsort((rank[active], -total[active], -degree[active]))]
    taken = np.zeros(n, dtype=bool)
    out = []
    for centre in order:
        if taken[centre]:
            continue
        lo, hi = adj.indptr[centre], adj.indptr[centre + 1]
        nbr, s = adj.indices[lo:hi], adj.data[lo:hi]
        free = ~taken[nbr]
        nbr, s = nbr[free], s[free]
        if nbr.size == 0:
            continue
        members = np.concatenate([[centre], nbr]).astype(np.int64)
        taken[members] = True
        keeper = _keeper(members, int(centre), rank, accepts)
        others = np.sort(members[members != keeper])
        if keeper == centre:
            link = dict(zip(nbr.tolist(), s.tolist()))
        else:
            row = adj[keeper]
            link = dict(zip(row.indices.tolist(), row.data.tolist()))
        weakest_member = min(others.tolist(), key=lambda m: (link.get(m, -np.inf), -m))
        weakest = (int(keeper), int(weakest_member), float(link.get(weakest_member, np.nan)))
        out.append((np.concatenate([[keeper], others]).astype(np.int64), int(keeper), weakest))
    return out


def _keeper(members: np.ndarray, centre: int, rank: np.ndarray, accepts: Accepts | None) -> int:
    """The best-ranked member accepted directly with every other member; the centre when no better one is."""
    if accepts is None:
        return centre
    for k in members[np.argsort(rank[members], kind="stable")]:
        k = int(k)
        if k == centre:
            return centre
        others = members[members != k]
        if bool(np.all(accepts(np.full(others.size, k, dtype=np.int64), others))):
            return k
    return centre
