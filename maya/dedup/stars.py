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
4. Optionally (:func:`attach_by_majority`, on with a model's built-in ``clip_majority``): an item left out of
   every star joins the one star most of whose members it resembles, by a margin over any other. Its clause
   is ``"clip-majority"``: it is not a direct match of the kept file, but a vote of the group, so it cannot
   chain either (an attached item never votes).
5. Optionally (:func:`attach_by_phash_majority`, ``phash_majority``, on by default in hybrid mode): an item
   still left out joins the one star most of whose members are within the pHash radius of it (clause
   ``"phash-majority"``): copies whose embedding a chain of edits wrecked but whose pHash survived.

Measured on collection benchmarks (benchmarks/bench_collection.py): see README "Collection benchmark".
Costs O(pairs) plus one rule check per (candidate keeper, member).
"""

from __future__ import annotations

import math
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
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    strength = np.asarray(strength, dtype=np.float64)
    rank = np.asarray(rank, dtype=np.int64)
    if a.size == 0:
        return []
    rows = np.concatenate([a, b])
    cols = np.concatenate([b, a])
    vals = np.concatenate([strength, strength])
    indptr, indices, data = _csr(n, rows, cols, vals)
    degree = np.diff(indptr)
    total = np.bincount(np.repeat(np.arange(n), degree), weights=data, minlength=n)
    active = np.flatnonzero(degree > 0)
    order = active[np.lexsort((rank[active], -total[active], -degree[active]))]
    taken = np.zeros(n, dtype=bool)
    stars = []  # (members, centre, free neighbours, their strengths): who joins a star does not depend on keepers
    for centre in order:
        if taken[centre]:
            continue
        lo, hi = indptr[centre], indptr[centre + 1]
        nbr, s = indices[lo:hi], data[lo:hi]
        free = ~taken[nbr]
        nbr, s = nbr[free], s[free]
        if nbr.size == 0:
            continue
        members = np.concatenate([[centre], nbr]).astype(np.int64)
        taken[members] = True
        stars.append((members, int(centre), nbr, s))
    keepers = _keepers([m for m, _, _, _ in stars], [c for _, c, _, _ in stars], rank, accepts)
    out = []
    for (members, centre, nbr, s), keeper in zip(stars, keepers):
        others = np.sort(members[members != keeper])
        if keeper == centre:
            link = dict(zip(nbr.tolist(), s.tolist()))
        else:
            lo, hi = indptr[keeper], indptr[keeper + 1]
            link = dict(zip(indices[lo:hi].tolist(), data[lo:hi].tolist()))
        weakest_member = min(others.tolist(), key=lambda m: (link.get(m, -np.inf), -m))
        weakest = (int(keeper), int(weakest_member), float(link.get(weakest_member, np.nan)))
        out.append((np.concatenate([[keeper], others]).astype(np.int64), int(keeper), weakest))
    return out


def _csr(n: int, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compressed rows ``(indptr (n + 1,), indices, data)`` of an n x n matrix from (row, col, value) entries:
    columns ascending within a row, duplicate entries summed (what scipy's ``coo_matrix(...).tocsr()`` gives,
    without importing scipy.sparse, ~22 MiB of a dedup's resident memory)."""
    order = np.lexsort((cols, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    if rows.size:
        new = np.ones(rows.size, dtype=bool)
        new[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        starts = np.flatnonzero(new)
        vals = np.add.reduceat(vals, starts)
        rows, cols = rows[starts], cols[starts]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, cols, vals


def _keepers(stars: list[np.ndarray], centres: list[int], rank: np.ndarray, accepts: Accepts | None) -> list[int]:
    """Per star, the best-ranked member accepted directly with every other member; the centre when no better one
    is (the centre is accepted with all of them). The stars' candidates are tried in rounds, the k-th best of every
    star still undecided in one call of the rule: a rerun over a large collection has thousands of stars, and a
    call per candidate cost more than the rule itself."""
    keeper = list(centres)
    if accepts is None:
        return keeper
    tries = []  # per star, the members ranked before its centre, best first
    for members, centre in zip(stars, centres):
        ordered = members[np.argsort(rank[members], kind="stable")]
        tries.append(ordered[:int(np.flatnonzero(ordered == centre)[0])])
    pending, step = [g for g, t in enumerate(tries) if t.size], 0
    while pending:
        xs, ys, owner = [], [], []
        for g in pending:
            k = tries[g][step]
            others = stars[g][stars[g] != k]
            xs.append(np.full(others.size, k, dtype=np.int64))
            ys.append(others)
            owner.append(np.full(others.size, g, dtype=np.int64))
        ok = np.asarray(accepts(np.concatenate(xs), np.concatenate(ys)), dtype=bool)
        failed = np.bincount(np.concatenate(owner)[~ok], minlength=len(stars))
        undecided = []
        for g in pending:
            if failed[g] == 0:
                keeper[g] = int(tries[g][step])
            elif step + 1 < tries[g].size:
                undecided.append(g)
        pending, step = undecided, step + 1
    return keeper


Similarity = Callable[[np.ndarray, np.ndarray], np.ndarray]


def attach_by_majority(n: int, groups: list[tuple[np.ndarray, int]], near_a: np.ndarray, near_b: np.ndarray,
                       near_s: np.ndarray, similarity: Similarity, *, floor: float,
                       margin: float) -> tuple[list[np.ndarray], set[int]]:
    """Items left out of every star joined to the one group most of whose members they resemble.

    A hard copy (a crop, a small rotation, a chain of edits) is often scored below every threshold against
    the kept file alone, yet resembles most files of its group. An ungrouped item ``x`` joins group ``G`` when

    * ``similarity(x, m) >= floor`` for a strict majority of G's members ``m`` (a vote: one near member, the
      end of a chain, is never enough), and
    * its mean similarity to G's members is ``>= floor`` and exceeds its mean to any other group that also
      passes the vote by at least ``margin`` (in a dense region of distinct look-alikes, a copy that
      resembles two groups alike joins neither).

    Every decision is taken against the stars as they were (an attached item does not vote), so the order of
    items does not matter and no chain can grow. ``groups``: ``(items, keeper)`` per star (items keeper
    first); ``near_a``/``near_b``/``near_s``: neighbour pairs (image, image, cosine similarity; e.g. from the
    candidates' k-NN), which say which groups an item is worth comparing with. Returns the groups' items
    (attached items appended, ascending after the star's own) and the set of attached items. Costs one
    similarity per (item, member of a neighbouring group).
    """
    member = np.full(n, -1, dtype=np.int64)
    for g, (items, _) in enumerate(groups):
        member[items] = g
    a = np.asarray(near_a, dtype=np.int64)
    b = np.asarray(near_b, dtype=np.int64)
    s = np.asarray(near_s, dtype=np.float64)
    close = np.concatenate([s, s]) >= floor  # both directions
    a, b = np.concatenate([a, b])[close], np.concatenate([b, a])[close]
    keep = (member[a] < 0) & (member[b] >= 0)  # a free item next to a grouped one
    a, g_of = a[keep], member[b[keep]]
    joined: dict[int, list[int]] = {}
    if a.size:
        key = np.unique(a * max(len(groups), 1) + g_of)
        xs, gs = key // max(len(groups), 1), key % max(len(groups), 1)
        bounds = np.flatnonzero(np.diff(np.concatenate([[-1], xs, [n]])))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            x = int(xs[lo])
            votes = []
            for g in gs[lo:hi].tolist():
                items = groups[g][0]
                sim = np.asarray(similarity(np.full(items.size, x, dtype=np.int64), items), dtype=np.float64)
                if 2 * int((sim >= floor).sum()) > items.size:
                    votes.append((float(sim.mean()), g))
            votes.sort(reverse=True)
            lead = votes[0][0] - votes[1][0] if len(votes) > 1 else math.inf
            if votes and votes[0][0] >= floor and lead >= margin and lead > 0:  # a tie joins neither
                joined.setdefault(votes[0][1], []).append(x)
    out = [np.concatenate([items, np.sort(np.asarray(joined.get(g, []), dtype=np.int64))]).astype(np.int64)
           for g, (items, _) in enumerate(groups)]
    return out, {x for xs_ in joined.values() for x in xs_}


def attach_by_phash_majority(n: int, groups: list[np.ndarray], taken: np.ndarray, near_a: np.ndarray,
                             near_b: np.ndarray, hash_class: np.ndarray | None = None) -> tuple[list[np.ndarray], set[int]]:
    """Items still left out joined to the one star most of whose members are near them in pHash.

    A copy whose embedding is wrecked (a chain of edits, a heavy pixelation, a text overlay over a texture) can
    keep its pHash: within the radius of most files of its group, while the model scores it below every
    threshold (even below the veto, which guards a *single* pHash match). A free item ``x`` joins star ``G`` when
    more than half of G's star members are pHash neighbours of ``x`` (``near_a``/``near_b``: image pairs within
    the pHash radius, dihedral and views, low-structure images left out; e.g. :attr:`Images.phash_near`) and no
    other star also has such a majority. As in :func:`attach_by_majority` one near member is never enough and an
    attached item never votes, so nothing chains.

    ``groups``: each star's own members (keeper first; items attached by the embedding vote left out);
    ``taken`` bool (n,): items already in a group (stars and the embedding vote's). ``hash_class`` int (n,): equal
    for images with one pHash (the candidates pair only the first image of a hash, so a neighbour of one is a
    neighbour of all; None: every image its own). Returns the items to append to each group (ascending int64
    arrays) and the set of attached items. Costs O(near pairs).
    """
    member = np.full(n, -1, dtype=np.int64)
    for g, items in enumerate(groups):
        member[items] = g
    cls = np.arange(n, dtype=np.int64) if hash_class is None else np.asarray(hash_class, dtype=np.int64)
    a = np.asarray(near_a, dtype=np.int64)
    b = np.asarray(near_b, dtype=np.int64)
    a, b = np.concatenate([a, b]), np.concatenate([b, a])
    free = ~np.asarray(taken, bool)
    a, b = a[free[a]], b[free[a]]
    grouped = np.flatnonzero(member >= 0)
    # members per (hash class, star): a free item near one image of a class is near every member of that class
    pair, per = np.unique(cls[grouped] * max(len(groups), 1) + member[grouped], return_counts=True)
    by_class: dict[int, list[tuple[int, int]]] = {}
    for key, c in zip(pair.tolist(), per.tolist()):
        by_class.setdefault(key // max(len(groups), 1), []).append((key % max(len(groups), 1), c))
    has = np.isin(cls[b], cls[grouped])
    near = np.unique(a[has] * n + cls[b[has]]) if has.any() else np.zeros(0, np.int64)  # (item, class) once
    count: dict[tuple[int, int], int] = {}
    for x, c in zip((near // n).tolist(), (near % n).tolist()):
        for g, k in by_class.get(c, ()):
            count[(x, g)] = count.get((x, g), 0) + k
    passing: dict[int, list[int]] = {}
    for (x, g), k in count.items():
        if 2 * k > groups[g].size:
            passing.setdefault(x, []).append(g)
    joined: dict[int, list[int]] = {}
    for x, gs in passing.items():
        if len(gs) == 1:  # near most of two stars: neither
            joined.setdefault(gs[0], []).append(x)
    out = [np.sort(np.asarray(joined.get(g, []), dtype=np.int64)) for g in range(len(groups))]
    return out, {x for xs_ in joined.values() for x in xs_}
