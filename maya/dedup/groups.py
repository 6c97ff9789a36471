"""Step 6 of dedup: groups of files from the accepted pairs, with the file to keep first.

The graph work (connected components, chains, splitting at the weakest link, the keep order) is
``maya.dedup.grouping``; this module turns images (contents) back into files: byte-identical files are one
image and always one group (``exact``), members carry their scores to the kept file (bits, cosine).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from maya.dedup import grouping
from maya.dedup.candidates import Images, Pairs, decide
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


@dataclass(frozen=True)
class DuplicateGroup:
    """One group of files; ``members[0]`` is the file to keep."""

    members: list[Member]
    chained: bool
    split: bool
    weakest_link: dict | None  # {"a", "b", "phash_distance", "clip_similarity"}

    @property
    def keep(self) -> Member:
        return self.members[0]


def duplicate_groups(images: Images, files: Sequence[ingest.IngestedFile], pairs: Pairs,
                     options: DedupOptions) -> list[DuplicateGroup]:
    """Groups of files from accepted pairs (plus byte-identical files), with the file to keep first.

    Sorted by the kept file's path.
    """
    import numpy as np
    from maya.hashing import DEFAULT

    index_of = {s: k for k, s in enumerate(images.sha256)}
    files_of: list[list[ingest.IngestedFile]] = [[] for _ in images.sha256]
    for f in files:
        k = index_of.get(f.sha256)
        if k is not None:
            files_of[k].append(f)
    for fl in files_of:
        fl.sort(key=lambda f: (f.mtime, f.path))  # oldest first, then by path: the one kept of exact copies
    n = len(images.sha256)
    best = [fl[0] if fl else None for fl in files_of]
    rank = grouping.representative_rank(
        images.width * images.height,
        [f.size_bytes if f else 0 for f in best],
        [f.mtime if f else np.nan for f in best],
        [f.path if f else "" for f in best],
    )
    use_sim = options.uses_embeddings and images.vectors is not None

    def strength(a, b):
        if use_sim:
            return images.similarity(a, b)
        return 1.0 - images.phash_distance(a, b).astype(np.float64) / float(DEFAULT.bits)

    def accepts(x, y):
        d = images.phash_distance(x, y)
        sim = images.similarity(x, y) if use_sim else None
        return decide(d, sim, options) != ""

    groups = grouping.group_pairs(n, pairs.a, pairs.b, strength(pairs.a, pairs.b), rank=rank,
                                  accepts=accepts, split_chains=options.split_chains)
    grouped = set()
    out = []
    for g in groups:
        grouped.update(int(x) for x in g.items)
        # with two images the weakest link is the only link: reported from three images on
        weakest = g.weakest_link if g.items.size >= 3 else None
        out.append(_file_group(images, files_of, g.items, g.chained, g.split, weakest, use_sim))
    for k in range(n):  # byte-identical files with no other near-duplicate
        if k not in grouped and len(files_of[k]) >= 2:
            out.append(_file_group(images, files_of, np.array([k]), False, False, None, use_sim))
    out.sort(key=lambda g: g.keep.path)
    return out


def _file_group(images: Images, files_of, items, chained, split, weakest, use_sim) -> DuplicateGroup:
    import numpy as np

    rep = int(items[0])
    keep_file = files_of[rep][0]
    members = []
    for k in items:
        k = int(k)
        d = int(images.phash_distance(np.array([k]), np.array([rep]))[0])
        sim = float(np.dot(images.vectors[k], images.vectors[rep])) if use_sim else None
        if use_sim and k == rep:
            sim = 1.0
        for f in files_of[k]:
            members.append(Member(f.path, f.sha256, d, None if sim is None else round(sim, 6),
                                  len(files_of[k]) >= 2, int(images.width[k]), int(images.height[k]),
                                  f.size_bytes, f.mtime))
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
