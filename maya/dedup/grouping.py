"""Groups of duplicates from accepted pairs: connected components, a guard against chains, a keeper.

Accepted pairs are edges between items (distinct images). A group is a connected component of two
or more items (union-find, done by ``scipy.sparse.csgraph.connected_components``).

Chaining: A~B and B~C put A and C in one group even when A and C are far apart (a slow zoom, a
series of crops). Each group is checked: every item must be accepted *directly* with the group's
representative by the same rule that accepted the pairs (``accepts``). A group that fails is
``chained``. Its ``weakest_link`` is the weakest edge of its strongest spanning tree (the maximum
spanning tree on edge ``strength``): the link whose removal separates the loosest part. With
``split_chains=True`` a chained group is cut at that link, and each part is checked again (a new
representative, the same test) until every part passes; this is single-linkage splitting, so the
parts are exactly the components that remain after removing the weakest spanning-tree links.

Representative: the item of smallest ``rank``; dedup ranks items by its keep rule (``maya.dedup.keep``);
:func:`representative_rank` is the plain "largest" order (pixels, bytes, oldest, path). With
``method="star"`` groups are stars instead of components (``maya.dedup.stars``): never chained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

Accepts = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Group:
    """One group of items.

    items: item indices, representative first, then ascending.
    representative: the item to keep (``items[0]``).
    weakest_link: ``(a, b, strength)`` of the weakest edge of the group's strongest spanning tree
        (``a < b``, item indices); None for a single item.
    chained: some item is not accepted directly with the representative (only when not split).
    split: the group is a part of a chained component that was split.
    """

    items: np.ndarray
    representative: int
    weakest_link: tuple[int, int, float] | None
    chained: bool
    split: bool


def representative_rank(pixels, size_bytes, mtime, names: Sequence[str]) -> np.ndarray:
    """Rank of each item as the one to keep: 0 is best. All inputs (N,).

    Order: most pixels (width x height), then most bytes, then oldest mtime (seconds), then the
    smallest name. NaN mtimes count as newest.
    """
    pixels = np.asarray(pixels, dtype=np.int64)
    size = np.asarray(size_bytes, dtype=np.int64)
    mtime = np.nan_to_num(np.asarray(mtime, dtype=np.float64), nan=np.inf)
    name_order = np.argsort(np.asarray(list(names), dtype=object), kind="stable")
    name_rank = np.empty(len(name_order), dtype=np.int64)
    name_rank[name_order] = np.arange(len(name_order))
    order = np.lexsort((name_rank, mtime, -size, -pixels))  # last key is the primary one
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label (int64, (n,)) of each of ``n`` items joined by edges ``a[k] -- b[k]``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as _cc

    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    _, labels = _cc(graph, directed=False)
    return labels.astype(np.int64)


def group_pairs(
    n: int,
    a: np.ndarray,
    b: np.ndarray,
    strength: np.ndarray,
    *,
    rank: np.ndarray,
    accepts: Accepts | None = None,
    split_chains: bool = False,
    method: str = "components",
) -> list[Group]:
    """Groups (components of two or more items) of ``n`` items joined by accepted pairs.

    Args:
        n: number of items.
        a, b: (P,) item indices of the accepted pairs.
        strength: (P,) how close each pair is, higher is closer (e.g. cosine similarity, or
            ``1 - d / 64`` for a Hamming distance d). Only its order matters.
        rank: (n,) from :func:`representative_rank`; the smallest rank in a group is kept.
        accepts: ``accepts(x, y) -> bool (len(x),)``: whether items x[k] and y[k] would be accepted
            as a pair directly. None: never chained (no check).
        split_chains: cut chained groups at their weakest links until every part passes.
        method: ``"components"`` (connected components, checked for chains as above) or ``"star"``
            (:mod:`maya.dedup.stars`: every member accepted directly with the kept item; never chained).

    Returns:
        Groups sorted by their representative's rank.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    strength = np.asarray(strength, dtype=np.float64)
    rank = np.asarray(rank, dtype=np.int64)
    if a.size == 0:
        return []
    if method == "star":
        from maya.dedup.stars import star_groups

        stars = star_groups(n, a, b, strength, rank=rank, accepts=accepts)
        groups = [Group(items, keeper, weakest, False, False) for items, keeper, weakest in stars]
        groups.sort(key=lambda g: rank[g.representative])
        return groups
    labels = connected_components(n, a, b)
    # edges sorted by component, then by (strength desc, a, b) so ties break the same way every run
    edge_order = np.lexsort((b, a, -strength, labels[a]))
    a, b, strength = a[edge_order], b[edge_order], strength[edge_order]
    edge_label = labels[a]
    edge_bounds = np.searchsorted(edge_label, np.arange(labels.max() + 2))
    item_order = np.argsort(labels, kind="stable")
    item_bounds = np.searchsorted(labels[item_order], np.arange(labels.max() + 2))

    groups: list[Group] = []
    for comp in np.flatnonzero(np.diff(item_bounds) >= 2):
        items = item_order[item_bounds[comp]:item_bounds[comp + 1]]
        e0, e1 = edge_bounds[comp], edge_bounds[comp + 1]
        ea, eb, es = a[e0:e1], b[e0:e1], strength[e0:e1]
        if items.size == 2:
            groups.append(_finish(items, (ea[:1], eb[:1], es[:1]), rank, accepts, split=False))
            continue
        tree = _max_spanning_tree(items, ea, eb, es)
        groups.extend(_check_or_split(items, tree, rank, accepts, split_chains))
    groups.sort(key=lambda g: rank[g.representative])
    return groups


def _max_spanning_tree(items, ea, eb, es):
    """Edges (a, b, strength) of a maximum spanning tree of one component (len(items) - 1 edges)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    local = {int(x): k for k, x in enumerate(items)}
    la = np.fromiter((local[int(x)] for x in ea), dtype=np.int64, count=ea.size)
    lb = np.fromiter((local[int(x)] for x in eb), dtype=np.int64, count=eb.size)
    # Weights must be > 0 (a zero is "no edge"): 2 - strength lies in [1, 3] for strengths in [-1, 1];
    # for other scales only the order matters, so shift to keep every weight positive.
    weight = (es.max() + 1.0) - es
    # keep one (the strongest, first in order) edge per unordered local pair
    lo, hi = np.minimum(la, lb), np.maximum(la, lb)
    _, first = np.unique(lo * items.size + hi, return_index=True)
    graph = coo_matrix((weight[first], (lo[first], hi[first])), shape=(items.size, items.size)).tocsr()
    tree = minimum_spanning_tree(graph).tocoo()
    ta, tb = items[tree.row], items[tree.col]
    ts = (es.max() + 1.0) - tree.data
    swap = ta > tb
    ta, tb = np.where(swap, tb, ta), np.where(swap, ta, tb)
    return ta.astype(np.int64), tb.astype(np.int64), ts


def _check_or_split(items, tree, rank, accepts, split_chains) -> list[Group]:
    out = []
    stack = [(items, tree, False)]
    while stack:
        part, (ta, tb, ts), was_split = stack.pop()
        group = _finish(part, (ta, tb, ts), rank, accepts, split=was_split)
        if not group.chained or not split_chains:
            out.append(group)
            continue
        # cut the weakest tree edge; the tree falls into two subtrees
        cut = _weakest(ta, tb, ts)
        keep = np.ones(ta.size, dtype=bool)
        keep[cut] = False
        ta, tb, ts = ta[keep], tb[keep], ts[keep]
        local = {int(x): k for k, x in enumerate(part)}
        la = np.array([local[int(x)] for x in ta], dtype=np.int64)
        lb = np.array([local[int(x)] for x in tb], dtype=np.int64)
        labels = connected_components(part.size, la, lb)
        for lab in np.unique(labels):
            sub = part[labels == lab]
            if sub.size < 2:
                continue
            inside = np.isin(ta, sub)
            stack.append((sub, (ta[inside], tb[inside], ts[inside]), True))
    return out


def _weakest(ta, tb, ts) -> int:
    """Index of the weakest edge; ties go to the largest (a, b) so the choice is deterministic."""
    return int(np.lexsort((-tb, -ta, ts))[0])


def _finish(items, tree, rank, accepts, *, split: bool) -> Group:
    ta, tb, ts = tree
    rep = int(items[np.argmin(rank[items])])
    others = np.sort(items[items != rep])
    ordered = np.concatenate([[rep], others]).astype(np.int64)
    weakest = None
    if ta.size:
        k = _weakest(ta, tb, ts)
        weakest = (int(ta[k]), int(tb[k]), float(ts[k]))
    chained = False
    if accepts is not None and others.size:
        ok = np.asarray(accepts(np.full(others.size, rep, dtype=np.int64), others), dtype=bool)
        chained = not bool(ok.all())
    return Group(ordered, rep, weakest, chained, split)
