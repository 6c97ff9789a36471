"""Step 6 of dedup: groups of files from the accepted pairs, with the file to keep first.

The graph work (connected components, chains, splitting at the weakest link, the keep order) is
``maya.dedup.grouping``; this module turns images (contents) back into files: byte-identical files are one
image and always one group (``exact``), members carry their scores to the kept file (bits, cosine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from maya.dedup import grouping
from maya.dedup.candidates import Images, Pairs, decide, pair_grid, structure_masks
from maya.dedup.options import DedupOptions
from maya.io import ingest


@dataclass(frozen=True)
class Member:
    path: str
    sha256: str
    phash_distance: int  # bits, to the kept file
    clip_similarity: float | None  # to the kept file, over the best pair of views; None without embeddings
    exact: bool  # byte-identical to another member
    width: int
    height: int
    size_bytes: int
    mtime: float
    #: what admitted it, to the kept file: "keep" (the kept file), "exact" (byte-identical to the kept
    #: file), "phash", "phash+clip", "clip" (the rule's clause, :mod:`maya.rule`), "clip-majority" (not a
    #: direct match: resembles most of the group's files, :func:`maya.dedup.stars.attach_by_majority`), "phash-majority"
    #: (not a direct match either: within the pHash radius of most of the group's files,
    #: :func:`maya.dedup.stars.attach_by_phash_majority`), "grid" (most of its cells agree pixel for pixel with
    #: the kept file's or, when the rule did not accept it with the kept file, with another member's: an overlaid
    #: copy, the rule's grid clause, :mod:`maya.hashing.grid`), or "chained" (not
    #: accepted directly with the kept file: only in a chained group of ``--grouping components``)
    clause: str = ""
    #: which views reached the score that decided (the pHash distance for clause "phash", else the
    #: similarity): "<member's view>/<kept file's view>", each "whole" or "inner" (maya.views), e.g.
    #: "inner/whole" for a screenshot whose inner picture matched the kept photo; "" for the kept file and
    #: its byte-identical copies
    views: str = ""


@dataclass(frozen=True)
class DuplicateGroup:
    """One group of files; ``members[0]`` is the file to keep."""

    members: list[Member]
    chained: bool
    split: bool
    weakest_link: dict | None  # {"a", "b", "phash_distance", "clip_similarity"}
    keep_reason: str = ""  # why members[0] is the one kept (maya.dedup.keep.keep_reason)

    @property
    def keep(self) -> Member:
        return self.members[0]


def duplicate_groups(images: Images, files: Sequence[ingest.IngestedFile], pairs: Pairs,
                     options: DedupOptions, roots: Sequence[str] = ()) -> list[DuplicateGroup]:
    """Groups of files from accepted pairs (plus byte-identical files), with the file to keep first.

    The file kept is chosen by ``options.keep`` / ``options.prefer`` (:mod:`maya.dedup.keep`; ``roots``: the
    folders searched, in command-line order). Sorted by the kept file's path.
    """
    from maya.dedup.keep import KeepKeys

    import numpy as np
    from maya.hashing import DEFAULT

    index_of = {s: k for k, s in enumerate(images.sha256)}
    files_of: list[list[ingest.IngestedFile]] = [[] for _ in images.sha256]
    for f in files:
        k = index_of.get(f.sha256)
        if k is not None:
            files_of[k].append(f)
    pixels = images.width * images.height
    framed = framed_copies(images, pairs, files_of) if options.keep == "source" else np.zeros(len(files_of), bool)

    # each file's keep key, once, when first asked for (a path is one file): a rerun over a large collection
    # groups a few of its files, and the key of every other file was a third of this step's time
    keep_key = KeepKeys(options.keep, roots, options.prefer)
    file_at: dict = {}  # path -> (image, file), made on the first key asked for by path alone

    class Keys(dict):
        def of(self, k, f):
            key = self.get(f.path)
            if key is None:
                key = self[f.path] = keep_key(f.path, int(pixels[k]), f.size_bytes, f.mtime, bool(framed[k]))
            return key

        def __missing__(self, path):
            if not file_at:
                file_at.update((f.path, (k, f)) for k, fl in enumerate(files_of) for f in fl)
            return self.of(*file_at[path])

    keys = Keys()
    n = len(images.sha256)
    # the rank (order of the best keys) matters among images a star can hold: those in a pair, and byte-identical
    # copies; the others follow in index order, as they do not meet
    involved = np.zeros(n, bool)
    involved[np.asarray(pairs.a, np.int64)] = True
    involved[np.asarray(pairs.b, np.int64)] = True
    for k, fl in enumerate(files_of):
        if len(fl) >= 2:
            involved[k] = True
            fl.sort(key=lambda f, k=k: keys.of(k, f))  # the one kept of byte-identical copies first
    best_keys = [keys.of(k, fl[0]) if fl and involved[k] else None for k, fl in enumerate(files_of)]
    order = sorted((k for k in range(n) if best_keys[k] is not None), key=lambda k: best_keys[k])
    order += [k for k in range(n) if best_keys[k] is None]
    rank = np.empty(n, dtype=np.int64)
    rank[np.asarray(order, dtype=np.int64)] = np.arange(n)
    use_sim = options.uses_embeddings and images.vectors is not None

    def strength(a, b):
        if use_sim:
            return images.similarity(a, b)
        return 1.0 - images.phash_distance(a, b).astype(np.float64) / float(DEFAULT.bits)

    def accepts_clause(x, y):
        d, unhashable, identical = structure_masks(images, x, y, images.phash_distance(x, y))
        sim = images.for_rule(x, y, images.similarity(x, y)) if use_sim else None
        return decide(d, sim, options, unhashable, identical, images.pair_scale(x, y),
                      pair_grid(images, x, y, sim, options))

    def accepts(x, y):
        return accepts_clause(x, y) != ""

    # star grouping: the grid clause's pairs (overlaid copies) make no star and take no part in the votes (an
    # overlay wrecks a copy's embedding); they attach the copies left out afterwards (_attach_grid)
    late = (pairs.rule == "grid") if options.grouping == "star" else np.zeros(len(pairs), bool)
    groups = grouping.group_pairs(n, pairs.a[~late], pairs.b[~late], strength(pairs.a[~late], pairs.b[~late]),
                                  rank=rank, accepts=accepts, split_chains=options.split_chains,
                                  method=options.grouping)
    voted: set[int] = set()
    stars = [g.items for g in groups]  # each star's own members, before any vote
    if options.uses_majority and images.near is not None and use_sim:  # left-out copies: a vote of the group
        groups, voted = _attach(n, groups, images, options)
    phash_voted: set[int] = set()
    if options.uses_phash_majority and images.phash_near is not None and groups:  # ...then a pHash vote
        groups, phash_voted = _attach_phash(n, groups, stars, images)
    grid_joined: set[int] = set()
    if late.any():  # ...then the overlaid copies (grid clause), without moving any star's centre
        groups, grid_joined = _attach_grid(n, groups, pairs.a[late], pairs.b[late], strength, rank, accepts,
                                           accepts_clause)
    grouped = np.zeros(n, bool)
    parts = []
    for g in groups:
        grouped[g.items] = True
        # with two images the weakest link is the only link: reported from three images on
        parts.append((g.items, g.chained, g.split, g.weakest_link if g.items.size >= 3 else None))
    # byte-identical files with no other near-duplicate
    parts += [(np.array([k]), False, False, None) for k in range(n) if not grouped[k] and len(files_of[k]) >= 2]
    out = _file_groups(images, files_of, parts, use_sim, accepts_clause, voted, phash_voted, grid_joined)
    from dataclasses import replace

    from maya.dedup.keep import keep_reason

    out = [replace(g, keep_reason=keep_reason(options.keep, keys[g.keep.path], [keys[m.path] for m in g.members[1:]]))
           for g in out]
    out.sort(key=lambda g: g.keep.path)
    return out


#: How far (log of the ratio) an inner view's aspect may be from the partner's for the view to be that partner
#: inside an added frame: a border drawn around a picture keeps its shape; a crop of a plain background rarely
#: cuts the same box as the view.
FRAME_ASPECT = 0.02


def framed_copies(images: Images, pairs: Pairs, files_of) -> np.ndarray:
    """Bool (n,): images that are a copy with an added frame of an image they are accepted with (the keep
    rule prefers the other, :mod:`maya.dedup.keep`).

    Cheap first: only an image with an inner view (:mod:`maya.views`, loaded with the features) whose view's
    pHash is nearer an accepted partner's than its own is, at the partner's aspect ratio (FRAME_ASPECT); then
    its file is decoded once and the pixels
    outside the view's box must be one flat colour (:func:`maya.dedup.keep.added_frame`), which a photo's own
    dark sky or plain wall (also cut off by the view) is not.
    """
    import numpy as np
    from maya.dedup.keep import added_frame
    from maya.hashing import hamming
    from maya.io.images import ImageLoadError, load_image

    n = len(images.sha256)
    out = np.zeros(n, bool)
    if images.view_of is None or not images.view_of.size or images.view_boxes is None or not len(pairs):
        return out
    rows = images.view_rows(np.arange(n))  # each image's inner view (-1: none)
    x = np.concatenate([pairs.a, pairs.b])
    y = np.concatenate([pairs.b, pairs.a])
    has = rows[x] >= 0
    x, y = x[has], y[has]
    nearer = hamming(images.view_hashes[rows[x]], images.hashes[y]) < hamming(images.hashes[x], images.hashes[y])
    box = images.view_boxes[rows[x]]  # the inner picture has the partner's shape (a crop of a plain background
    inner = (box[:, 2] - box[:, 0]) * images.width[x] / np.maximum((box[:, 3] - box[:, 1]) * images.height[x], 1e-9)
    shape = images.width[y] / np.maximum(images.height[y], 1)  # rarely does, an added frame always)
    nearer &= np.abs(np.log(inner / shape)) <= FRAME_ASPECT
    for k in np.unique(x[nearer]).tolist():
        if not files_of[k]:
            continue
        try:
            image = load_image(files_of[k][0].path).image
        except (ImageLoadError, OSError):
            continue
        out[k] = added_frame(image, tuple(images.view_boxes[rows[k]]))
    return out


def _attach(n: int, groups: list, images: Images, options: DedupOptions) -> tuple[list, set[int]]:
    """Star groups with left-out items attached by a majority vote (:func:`maya.dedup.stars.attach_by_majority`),
    their weakest link updated; and the attached items."""
    from maya.dedup.stars import attach_by_majority

    items, voted = attach_by_majority(n, [(g.items, g.representative) for g in groups], *images.near,
                                      lambda x, y: images.for_rule(x, y, images.similarity(x, y), voter=True),
                                      floor=float(options.clip_majority),
                                      margin=float(options.clip_majority_margin))
    return [_with_items(g, it, images.similarity) if it.size != g.items.size else g
            for g, it in zip(groups, items)], voted


def _attach_phash(n: int, groups: list, stars: list, images: Images) -> tuple[list, set[int]]:
    """Groups with still-left-out items attached by the pHash vote (:func:`maya.dedup.stars.
    attach_by_phash_majority`, over each group's star members), their weakest link updated; and the attached items."""
    from dataclasses import replace

    import numpy as np
    from maya.dedup.stars import attach_by_phash_majority

    taken = np.zeros(n, bool)
    for g in groups:
        taken[g.items] = True
    hash_class = np.unique(images.hashes, return_inverse=True)[1].reshape(-1)
    extra, voted = attach_by_phash_majority(n, stars, taken, *images.phash_near, hash_class=hash_class)
    out = []
    for g, more in zip(groups, extra):
        if more.size:
            rep = g.representative
            sim = images.similarity(np.full(more.size, rep, dtype=np.int64), more)
            k = int(np.argmin(sim))
            weak = g.weakest_link
            if weak is None or not sim[k] >= weak[2]:
                weak = (rep, int(more[k]), float(sim[k]))
            g = replace(g, items=np.concatenate([g.items, more]).astype(np.int64), weakest_link=weak)
        out.append(g)
    return out, voted


def _attach_grid(n: int, groups: list, a, b, strength, rank, accepts, clause_of) -> tuple[list, set[int]]:
    """Groups with the grid clause's pairs ``a[k]``, ``b[k]`` (star grouping) added, and the items they added.

    The stars and both votes are built from the other clauses' pairs only: an overlaid copy (many grid pairs with
    its original) moves no centre, and its overlay-wrecked embedding votes in no star (measured: as a star member
    it turned the vote on a crop of a texture half towards the other half's group). Then an item left out joins
    the one group that holds a grid partner of it (most of their cells agree pixel for pixel: a copy of that
    member's picture); partners in two groups: neither. Before that, a member that only the model's own
    clause (``"clip"``) or its vote put in a group, with no grid partner there and grid partners in exactly one
    other group (counting the partners that a pHash or grid clause or the keeping links to their group), is taken
    out of it (two overlaid copies of different textures look alike to the model, their
    pixels say which originals they are copies of), unless that other group would not outlive the moves (left with
    one item); a group left with one item is dissolved. Items still left
    out that are grid partners of each other form stars of their own (:func:`maya.dedup.stars.star_groups`,
    via ``grouping.group_pairs``). ``clause_of(x, y)``: the rule's clause per pair of items."""
    import numpy as np

    member = np.full(n, -1, dtype=np.int64)
    for g, grp in enumerate(groups):
        member[grp.items] = g
    x, y = np.concatenate([a, b]).astype(np.int64), np.concatenate([b, a]).astype(np.int64)
    loose = np.zeros(n, bool)  # members that only the model's own clause or a vote links to their kept file
    others = [grp.items[grp.items != grp.representative] for grp in groups]
    if any(o.size for o in others):  # every group's members and kept items in one call of the rule
        ys = np.concatenate(others).astype(np.int64)
        xs = np.concatenate([np.full(o.size, grp.representative, dtype=np.int64) for o, grp in zip(others, groups)])
        clause = np.asarray(clause_of(xs, ys))
        loose[ys] = (clause == "clip") | (clause == "")
    firm = (member[y] >= 0) & ~loose[y]
    partners: dict[int, set[int]] = {}
    for i, g in zip(x[firm].tolist(), member[y[firm]].tolist()):
        partners.setdefault(i, set()).add(g)
    moved = [i for i, gs in partners.items() if loose[i] and len(gs) == 1 and int(member[i]) not in gs]
    # a move only towards a group that outlives the moves: a star of an overlaid copy and one loose look-alike is
    # dissolved when the look-alike leaves, and what was moved towards it would be left out of its own group
    left = np.bincount(member[moved], minlength=len(groups)) if moved else np.zeros(len(groups), np.int64)
    outlives = np.array([grp.items.size for grp in groups], np.int64) - left >= 2
    moved = [i for i in moved if outlives[next(iter(partners[i]))]]
    if moved:
        gone = set(moved)
        kept = [_with_items(grp, np.array([k for k in grp.items.tolist() if k not in gone], np.int64), strength)
                if gone & set(grp.items.tolist()) else grp for grp in groups]
        groups = [grp for grp in kept if grp.items.size >= 2]
        member[:] = -1
        for g, grp in enumerate(groups):
            member[grp.items] = g
    edge = (member[x] < 0) & (member[y] >= 0)
    targets: dict[int, set[int]] = {}
    for i, g in zip(x[edge].tolist(), member[y[edge]].tolist()):
        targets.setdefault(i, set()).add(g)
    joined: dict[int, list[int]] = {}
    for i, gs in targets.items():
        if len(gs) == 1:
            joined.setdefault(next(iter(gs)), []).append(i)
    out = [_with_items(grp, np.concatenate([grp.items, np.sort(np.asarray(joined[g], np.int64))]), strength)
           if g in joined else grp for g, grp in enumerate(groups)]
    added = {i for xs in joined.values() for i in xs}
    free = member < 0
    free[list(added)] = False
    rest = free[a] & free[b]
    if rest.any():
        new = grouping.group_pairs(n, a[rest], b[rest], strength(a[rest], b[rest]), rank=rank, accepts=accepts,
                                   method="star")
        out += new
        added.update(int(i) for grp in new for i in grp.items)
    return out, added


def _with_items(group, items, strength):
    """``group`` with these ``items`` (its kept item first) and its weakest link among them."""
    from dataclasses import replace

    import numpy as np

    items = np.asarray(items, dtype=np.int64)
    rep, others = group.representative, items[1:]
    if not others.size:
        return replace(group, items=items, weakest_link=None)
    s = np.asarray(strength(np.full(others.size, rep, dtype=np.int64), others), dtype=np.float64)
    k = int(np.argmin(s))
    return replace(group, items=items, weakest_link=(rep, int(others[k]), float(s[k])))


def _file_groups(images: Images, files_of, parts, use_sim, clause_of, voted=frozenset(), phash_voted=frozenset(),
                 grid_joined=frozenset()) -> list[DuplicateGroup]:
    """The file groups of ``parts`` (``(items, chained, split, weakest link)`` per group, its kept item first): each
    member's clause, distance and similarity to the kept item, all groups' pairs scored in one call of each
    (a call per group cost more than the scores on a rerun over thousands of groups)."""
    import numpy as np

    if not parts:
        return []
    items_all = np.concatenate([np.asarray(items, dtype=np.int64) for items, _, _, _ in parts])
    reps_all = np.concatenate([np.full(len(items), int(items[0]), dtype=np.int64) for items, _, _, _ in parts])
    dists, _, d_views = images.phash_views(items_all, reps_all)
    sims, sim_views = images.similarity_views(items_all, reps_all) if use_sim else (None, None)
    other = items_all != reps_all
    clause_all = np.full(items_all.size, "", dtype=object)
    if other.any():
        clause_all[other] = np.asarray(clause_of(reps_all[other], items_all[other]), dtype=object)
    links = [(k, w) for k, (_, _, _, w) in enumerate(parts) if w is not None]
    link_of = {}
    if links:
        wa = np.array([w[0] for _, w in links], dtype=np.int64)
        wb = np.array([w[1] for _, w in links], dtype=np.int64)
        wd = images.phash_distance(wa, wb)
        ws = images.similarity(wa, wb) if use_sim else None
        for j, (k, _) in enumerate(links):
            link_of[k] = {"a": files_of[int(wa[j])][0].path, "b": files_of[int(wb[j])][0].path,
                          "phash_distance": int(wd[j]),
                          "clip_similarity": round(float(ws[j]), 6) if use_sim else None}
    out, start = [], 0
    for k, (items, chained, split, _) in enumerate(parts):
        stop = start + len(items)
        rep = int(items[0])
        keep_file = files_of[rep][0]
        members = []
        for j in range(start, stop):
            m = int(items_all[j])
            clause = "exact" if m == rep else (clause_all[j] or ("grid" if m in grid_joined else "clip-majority"
                                                                 if m in voted else "phash-majority"
                                                                 if m in phash_voted else "chained"))
            d = int(dists[j])
            sim = None if sims is None else (1.0 if m == rep else float(sims[j]))
            views = "" if m == rep else images.view_pair_name(int(d_views[j]) if sim is None or clause == "phash"
                                                              else int(sim_views[j]))
            for f in files_of[m]:
                members.append(Member(f.path, f.sha256, d, None if sim is None else round(sim, 6),
                                      len(files_of[m]) >= 2, int(images.width[m]), int(images.height[m]),
                                      f.size_bytes, f.mtime, "keep" if f is keep_file else clause,
                                      "" if f is keep_file else views))
        keep = next(m for m in members if m.path == keep_file.path)
        rest = sorted((m for m in members if m is not keep),
                      key=lambda m: (m.phash_distance, -(m.clip_similarity or 0.0), m.path))
        out.append(DuplicateGroup([keep] + rest, bool(chained), bool(split), link_of.get(k)))
        start = stop
    return out
