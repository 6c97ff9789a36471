"""Step 6 of dedup: groups of files from the accepted pairs, with the file to keep first.

The graph work (connected components, chains, splitting at the weakest link, the keep order) is
``maya.dedup.grouping``; this module turns images (contents) back into files: byte-identical files are one
image and always one group (``exact``), members carry their scores to the kept file (bits, cosine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from maya.dedup import grouping
from maya.dedup.candidates import Images, Pairs, decide, structure_masks
from maya.dedup.options import DedupOptions
from maya.io import ingest


@dataclass(frozen=True)
class Member:
    path: str
    sha256: str
    phash_distance: int  # bits, to the kept file
    clip_similarity: float | None  # to the kept file; None without embeddings
    exact: bool  # byte-identical to another member
    width: int
    height: int
    size_bytes: int
    mtime: float
    #: what admitted it, to the kept file: "keep" (the kept file), "exact" (byte-identical to the kept
    #: file), "phash", "phash+clip", "clip" (the rule's clause, :mod:`maya.rule`), or "chained" (not
    #: accepted directly with the kept file: only in a chained group of ``--grouping components``)
    clause: str = ""


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
    from maya.dedup.keep import keep_order

    import numpy as np
    from maya.hashing import DEFAULT

    index_of = {s: k for k, s in enumerate(images.sha256)}
    files_of: list[list[ingest.IngestedFile]] = [[] for _ in images.sha256]
    for f in files:
        k = index_of.get(f.sha256)
        if k is not None:
            files_of[k].append(f)
    pixels = images.width * images.height

    # each file's keep key, once (a path is one file)
    keys = {f.path: keep_order(options.keep, f.path, int(pixels[k]), f.size_bytes, f.mtime, roots, options.prefer)
            for k, fl in enumerate(files_of) for f in fl}
    for fl in files_of:
        fl.sort(key=lambda f: keys[f.path])  # the one kept of byte-identical copies first
    n = len(images.sha256)
    best_keys = [keys[fl[0].path] if fl else None for fl in files_of]
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
        sim = images.similarity(x, y) if use_sim else None
        return decide(d, sim, options, unhashable, identical)

    def accepts(x, y):
        return accepts_clause(x, y) != ""

    groups = grouping.group_pairs(n, pairs.a, pairs.b, strength(pairs.a, pairs.b), rank=rank,
                                  accepts=accepts, split_chains=options.split_chains,
                                  method=options.grouping)
    grouped = set()
    out = []
    for g in groups:
        grouped.update(int(x) for x in g.items)
        # with two images the weakest link is the only link: reported from three images on
        weakest = g.weakest_link if g.items.size >= 3 else None
        out.append(_file_group(images, files_of, g.items, g.chained, g.split, weakest, use_sim, accepts_clause))
    for k in range(n):  # byte-identical files with no other near-duplicate
        if k not in grouped and len(files_of[k]) >= 2:
            out.append(_file_group(images, files_of, np.array([k]), False, False, None, use_sim, accepts_clause))
    from dataclasses import replace

    from maya.dedup.keep import keep_reason

    out = [replace(g, keep_reason=keep_reason(options.keep, keys[g.keep.path], [keys[m.path] for m in g.members[1:]]))
           for g in out]
    out.sort(key=lambda g: g.keep.path)
    return out


def _file_group(images: Images, files_of, items, chained, split, weakest, use_sim, clause_of) -> DuplicateGroup:
    import numpy as np

    rep = int(items[0])
    keep_file = files_of[rep][0]
    members = []
    others = np.asarray([int(k) for k in items if int(k) != rep], dtype=np.int64)
    clauses = dict(zip(others.tolist(), clause_of(np.full(others.size, rep, dtype=np.int64), others).tolist())) \
        if others.size else {}
    items = np.asarray(items, dtype=np.int64)
    dists = images.phash_distance(items, np.full(items.size, rep, dtype=np.int64)).tolist()  # one call a group
    for k, d in zip(items.tolist(), dists):
        clause = "exact" if k == rep else (clauses.get(k) or "chained")
        d = int(d)
        sim = float(np.dot(images.vectors[k], images.vectors[rep])) if use_sim else None
        if use_sim and k == rep:
            sim = 1.0
        for f in files_of[k]:
            members.append(Member(f.path, f.sha256, d, None if sim is None else round(sim, 6),
                                  len(files_of[k]) >= 2, int(images.width[k]), int(images.height[k]),
                                  f.size_bytes, f.mtime, "keep" if f is keep_file else clause))
    keep = next(m for m in members if m.path == keep_file.path)
    rest = sorted((m for m in members if m is not keep),
                  key=lambda m: (m.phash_distance, -(m.clip_similarity or 0.0), m.path))
    link = None
    if weakest is not None:
        wa, wb, _ = weakest
        d = int(images.phash_distance(np.array([wa]), np.array([wb]))[0])
        sim = round(float(np.dot(images.vectors[wa], images.vectors[wb])), 6) if use_sim else None
        link = {"a": files_of[wa][0].path, "b": files_of[wb][0].path, "phash_distance": d, "clip_similarity": sim}
    return DuplicateGroup([keep] + rest, bool(chained), bool(split), link)
