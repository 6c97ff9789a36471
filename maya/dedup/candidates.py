"""Steps 3-5 of dedup: load the features of the images, find candidate pairs, verify them with the rule.

Candidates are never all N^2 pairs: pHash pairs come from a radius search over the hashes
(``maya.hashing.index``, multi-index hashing), embedding pairs from each image's ``clip_k`` nearest
neighbours (``maya.embedding.knn``, blockwise matrix products). Verification scores each candidate
(pHash distance in bits; cosine similarity of unit embeddings) and keeps those the one decision rule
(:mod:`maya.rule`, set by the mode: :attr:`maya.dedup.options.DedupOptions.rule`) accepts, with the
clause that accepted it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from maya.dedup.options import DedupOptions

if TYPE_CHECKING:
    import numpy as np


@dataclass
class Images:
    """The distinct images (contents) that have every feature the mode needs, aligned arrays."""

    sha256: list[str]
    hashes: np.ndarray  # uint64 (n,)
    vectors: np.ndarray | None  # float32 (n, dim), unit rows; None without embeddings
    width: np.ndarray  # int64 (n,), pixels after EXIF orientation
    height: np.ndarray


def load_images(con, shas: Sequence[str], model_id: str | None, *, chunk: int = 4096) -> Images:
    """Read the features of ``shas`` from the store (vectors in chunks, straight into one matrix)."""
    import numpy as np
    from maya import store
    from maya.hashing import DEFAULT
    from maya.store import dedup as dedup_store

    shas = list(shas)
    hashes_by = store.load_hashes(con, shas, DEFAULT.name)
    hashes = np.array([hashes_by[s] for s in shas], dtype=np.uint64)
    width, height = dedup_store.image_sizes(con, shas)
    vectors = None
    if model_id is not None and shas:
        vectors = dedup_store.embedding_matrix(con, shas, model_id, chunk=chunk)
    return Images(shas, hashes, vectors, width, height)


@dataclass
class Pairs:
    """Pairs of images (indices into :class:`Images`), ``a < b``, sorted by (a, b)."""

    a: np.ndarray  # int64 (P,)
    b: np.ndarray  # int64 (P,)
    phash_distance: np.ndarray  # int64 (P,), bits
    clip_similarity: np.ndarray  # float64 (P,); NaN without embeddings
    rule: np.ndarray  # object (P,): "phash" | "phash+clip" | "clip" ("" before verification)

    def __len__(self) -> int:
        return int(self.a.size)


def candidate_pairs(images: Images, options: DedupOptions) -> tuple[np.ndarray, np.ndarray]:
    """Pairs worth deciding, without comparing all N^2: ``(a, b)`` int64, ``a < b``, unique.

    pHash side (modes phash, hybrid): images with identical hashes are joined to the first of them
    (a star: they all match at distance 0, and a star keeps a group of k identical hashes at k - 1
    pairs instead of k^2 / 2); distinct hashes within the radius come from ``maya.hashing.index``: within
    ``phash_accept`` one pair joins the two hashes' first images (all of them match), beyond it
    (hybrid, up to ``phash_radius``) every image pair is a candidate for the embedding to verify.
    Embedding side (clip, hybrid): each image's ``clip_k`` nearest neighbours with similarity >=
    ``clip_strict`` (``maya.embedding.knn``, blockwise).
    """
    import numpy as np
    from maya.hashing import index as hash_index
    from maya.embedding import ann, knn

    n = len(images.sha256)
    parts_a, parts_b = [], []
    if n >= 2 and options.mode in ("phash", "hybrid"):
        uniq, inverse, counts = np.unique(images.hashes, return_inverse=True, return_counts=True)
        order = np.argsort(inverse, kind="stable")  # images grouped by hash, ascending index inside
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        first = order[starts]
        star = np.flatnonzero(first[inverse] != np.arange(n))
        parts_a.append(first[inverse[star]])
        parts_b.append(star)
        radius = options.phash_radius if options.mode == "hybrid" else options.phash_accept
        ua, ub, d = hash_index.pairs_within(uniq, radius)
        near = d.astype(np.int64) <= options.phash_accept
        parts_a.append(first[ua[near]])
        parts_b.append(first[ub[near]])
        far_a, far_b = ua[~near], ub[~near]
        if far_a.size:  # every image of one hash with every image of the other, for the model to verify
            na, nb = counts[far_a], counts[far_b]
            sizes = na * nb
            pair = np.repeat(np.arange(far_a.size), sizes)
            k = np.arange(pair.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            x, y = np.divmod(k, nb[pair])
            parts_a.append(order[starts[far_a[pair]] + x])
            parts_b.append(order[starts[far_b[pair]] + y])
    if n >= 2 and options.mode in ("clip", "hybrid") and images.vectors is not None:
        idx, sim = ann.self_topk(images.vectors, options.clip_k)  # exact below ann.EXACT_MAX or without faiss
        ca, cb = knn.pairs_above(idx, sim, options.clip_strict)
        parts_a.append(ca)
        parts_b.append(cb)
    if not parts_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = np.concatenate(parts_a).astype(np.int64)
    b = np.concatenate(parts_b).astype(np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = np.unique(lo * n + hi)
    return key // n, key % n


def pair_similarity(vectors: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Cosine similarity (float64 (P,)) of rows ``a[k]`` and ``b[k]`` of unit ``vectors``, in chunks."""
    import numpy as np
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), chunk):
        va, vb = vectors[a[s:s + chunk]], vectors[b[s:s + chunk]]
        out[s:s + chunk] = np.einsum("ij,ij->i", va, vb, dtype=np.float64)
    return out


def decide(d: np.ndarray, sim: np.ndarray | None, options: DedupOptions) -> np.ndarray:
    """The clause that accepted each pair: ``"phash"``, ``"phash+clip"``, ``"clip"``, or ``""`` (no match).

    ``d``: (P,) pHash distances in bits; ``sim``: (P,) cosine similarities, or None without embeddings
    (then only the pHash clause can match). Returns an object array (P,). The rule is
    :attr:`DedupOptions.rule` (:mod:`maya.rule`); the mode decides which clauses it has.
    """
    if options.mode == "phash":
        sim = None
    return options.rule.clauses(d, sim)


def verify_pairs(images: Images, a: np.ndarray, b: np.ndarray, options: DedupOptions) -> Pairs:
    """Score candidates (pHash distance; similarity when there are embeddings) and keep those the rule accepts."""
    import numpy as np
    from maya.hashing import hamming

    d = hamming(images.hashes[a], images.hashes[b]).astype(np.int64)
    use_sim = options.uses_embeddings and images.vectors is not None
    sim = pair_similarity(images.vectors, a, b) if use_sim else np.full(len(a), np.nan)
    rule = decide(d, sim if use_sim else None, options)
    keep = rule != ""
    return Pairs(a[keep], b[keep], d[keep], sim[keep], rule[keep])
