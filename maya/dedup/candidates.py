"""Steps 3-5 of dedup: load the features of the images, find candidate pairs, verify them with the rule.

Candidates are never all N^2 pairs: pHash pairs come from a radius search over the hashes
(``maya.hashing.index``, multi-index hashing), embedding pairs from each image's ``clip_k`` nearest
neighbours (``maya.embedding.knn``, blockwise matrix products). Verification scores each candidate
(pHash distance in bits; cosine similarity of unit embeddings) and keeps those the one decision rule
(:mod:`maya.rule`, set by the mode: :attr:`maya.dedup.options.DedupOptions.rule`) accepts, with the
clause that accepted it.

Low-structure images (near-uniform after decoding, :mod:`maya.hashing.structure`; flagged in
``Images.low_structure``) carry hashes that are noise, so the pHash side neither proposes nor decides
their pairs: among them, only pixel-identical decodes (equal digest and original size) are paired and
accepted (clause ``"phash"`` at distance 0); with embeddings, the model's own clause (``"clip"``) decides
every other pair with such an image.
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
    low_structure: np.ndarray | None = None  # bool (n,): too uniform for pHash (maya.hashing.structure)
    pixels: list | None = None  # (n,) pixel digests (str or None), for pixel-identical low-structure images


def load_images(con, shas: Sequence[str], model_id: str | None, *, chunk: int = 4096) -> Images:
    """Read the features of ``shas`` from the store (vectors in chunks, straight into one matrix)."""
    import numpy as np
    from maya import store
    from maya.hashing import DEFAULT
    from maya.hashing import structure
    from maya.store import dedup as dedup_store

    shas = list(shas)
    hashes_by = store.load_hashes(con, shas, DEFAULT.name)
    hashes = np.array([hashes_by[s] for s in shas], dtype=np.uint64)
    width, height = dedup_store.image_sizes(con, shas)
    vectors = None
    if model_id is not None and shas:
        vectors = dedup_store.embedding_matrix(con, shas, model_id, chunk=chunk)
    struct = store.load_structure(con, shas, DEFAULT.name)
    std = np.array([struct.get(s, (np.inf, None))[0] for s in shas], dtype=np.float64)
    pixels = [struct.get(s, (np.inf, None))[1] for s in shas]
    return Images(shas, hashes, vectors, width, height, structure.is_low_structure(std), pixels)


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
    from maya.embedding import knn

    n = len(images.sha256)
    parts_a, parts_b = [], []
    low = _low_structure(images)
    if n >= 2 and low.any():  # low-structure images: pixel-identical ones (star per digest and size)
        a, b = _identical_pixels(images, np.flatnonzero(low))
        parts_a.append(a)
        parts_b.append(b)
    if int((~low).sum()) >= 2 and options.mode in ("phash", "hybrid"):
        # low-structure images are kept out of the pHash side (stars and radius search) entirely
        hashed = np.flatnonzero(~low)
        uniq, inverse, counts = np.unique(images.hashes[hashed], return_inverse=True, return_counts=True)
        order = hashed[np.argsort(inverse, kind="stable")]  # images grouped by hash, ascending index inside
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        first = order[starts]
        star = np.flatnonzero(first[inverse] != hashed)
        parts_a.append(first[inverse[star]])
        parts_b.append(hashed[star])
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
        idx, sim = knn.clip_topk(images.vectors, options.clip_k)
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


def _low_structure(images: Images) -> np.ndarray:
    """Bool (n,): the low-structure flags, all False when the store had none."""
    import numpy as np

    n = len(images.sha256)
    return np.zeros(n, bool) if images.low_structure is None else np.asarray(images.low_structure, bool)


def _identical_pixels(images: Images, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Star pairs ``(first, other)`` among ``idx`` whose pixel digest and original size are equal."""
    import numpy as np

    first: dict = {}
    a, b = [], []
    for i in idx.tolist():
        digest = images.pixels[i] if images.pixels is not None else None
        if digest is None:
            continue
        key = (digest, int(images.width[i]), int(images.height[i]))
        j = first.setdefault(key, i)
        if j != i:
            a.append(j)
            b.append(i)
    return np.array(a, np.int64), np.array(b, np.int64)


def pair_similarity(vectors: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Cosine similarity (float64 (P,)) of rows ``a[k]`` and ``b[k]`` of unit ``vectors``, in chunks."""
    import numpy as np
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), chunk):
        va, vb = vectors[a[s:s + chunk]], vectors[b[s:s + chunk]]
        out[s:s + chunk] = np.einsum("ij,ij->i", va, vb, dtype=np.float64)
    return out


def decide(d: np.ndarray, sim: np.ndarray | None, options: DedupOptions,
           unhashable: np.ndarray | None = None, identical: np.ndarray | None = None) -> np.ndarray:
    """The clause that accepted each pair: ``"phash"``, ``"phash+clip"``, ``"clip"``, or ``""`` (no match).

    ``d``: (P,) pHash distances in bits; ``sim``: (P,) cosine similarities, or None without embeddings
    (then only the pHash clause can match). Returns an object array (P,). The rule is
    :attr:`DedupOptions.rule` (:mod:`maya.rule`); the mode decides which clauses it has.

    The low-structure hook: ``unhashable`` (P,) bool marks pairs with a low-structure image; their
    pHash distance says nothing, so the rule sees it as beyond every band (no pHash clause: the model
    decides, by its embedding-only clause). ``identical`` (P,) bool marks pixel-identical pairs, which
    match as ``"phash"`` whatever the mode.
    """
    import numpy as np

    if options.mode == "phash":
        sim = None
    if unhashable is not None and unhashable.any():
        d = np.where(unhashable, 65, d)
    out = options.rule.clauses(d, sim)
    if identical is not None:
        out[identical & (out == "")] = "phash"
    return out


def verify_pairs(images: Images, a: np.ndarray, b: np.ndarray, options: DedupOptions) -> Pairs:
    """Score candidates (pHash distance; similarity when there are embeddings) and keep those the rule accepts."""
    import numpy as np
    from maya.hashing import hamming

    d = hamming(images.hashes[a], images.hashes[b]).astype(np.int64)
    use_sim = options.uses_embeddings and images.vectors is not None
    sim = pair_similarity(images.vectors, a, b) if use_sim else np.full(len(a), np.nan)
    low = _low_structure(images)
    unhashable = low[a] | low[b]
    identical = np.zeros(len(a), bool)
    if unhashable.any() and images.pixels is not None:
        px = np.array(images.pixels, dtype=object)
        identical = (unhashable & (px[a] == px[b]) & (images.width[a] == images.width[b])
                     & (images.height[a] == images.height[b]) & np.array([p is not None for p in px[a]], bool))
        d = np.where(identical, 0, d)
    rule = decide(d, sim if use_sim else None, options, unhashable, identical)
    keep = rule != ""
    return Pairs(a[keep], b[keep], d[keep], sim[keep], rule[keep])
