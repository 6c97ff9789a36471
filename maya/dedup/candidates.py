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
    variants: np.ndarray | None = None  # uint64 (n, 8): dihedral pHashes (maya.hashing.dihedral); None: plain only
    # second views (maya.views), m of them: the image each belongs to, its pHash, its unit embedding
    view_of: np.ndarray | None = None  # int64 (m,), indices into sha256 (an image may have several views)
    view_hashes: np.ndarray | None = None  # uint64 (m,)
    view_vectors: np.ndarray | None = None  # float32 (m, dim); None without embeddings
    view_kind: np.ndarray | None = None  # int8 (m,): index into view_names (None: all 1, the inner view)
    view_names: tuple = ("whole", "inner")  # name of each kind of view; 0 is the whole image
    view_boxes: np.ndarray | None = None  # float64 (m, 4): each view's box (left, top, right, bottom fractions)

    low_structure: np.ndarray | None = None  # bool (n,): too uniform for pHash (maya.hashing.structure)
    pixels: list | None = None  # (n,) pixel digests (str or None), for pixel-identical low-structure images
    #: float64 (n,): each image's local scale, its similarity to its k-th nearest other image (+inf: fewer
    #: than k); filled by :func:`candidate_pairs` when the rule has the local clause (:func:`local_scale`)
    scale: np.ndarray | None = None
    #: ``(a, b, sim)``: each image's nearest other images (views folded in, :func:`fold_neighbours`); filled by
    #: :func:`candidate_pairs` when the rule has the local clause or grouping the majority vote
    near: tuple | None = None
    #: ``(a, b)`` int64: candidate pairs within the pHash radius (low-structure images left out), accepted or not;
    #: filled by :func:`verify_pairs` for star grouping's pHash vote (:attr:`DedupOptions.uses_phash_majority`)
    phash_near: tuple | None = None
    #: uint8 (n, cells, pixels): each image's grey thumbnail in cell order for the grid clause (maya.hashing.grid.
    #: cells); None: not loaded. ``grid_stats``: its cells' (mean, std), float32 (n, cells) each
    grid: np.ndarray | None = None
    grid_stats: tuple | None = None
    #: bool (n,): images with too little fine structure for an embedding to tell apart (:func:`maya.hashing.grid.
    #: smooth`), near-uniform (low-structure) ones excepted; None: not known (no thumbnails, or no model)
    smooth: np.ndarray | None = None
    #: the index folder of the store (:func:`maya.index.collection.index_dir`) where the turned-pHash pairs are kept
    #: between runs (:mod:`maya.index.turned`); None: searched afresh (an in-memory store)
    pair_cache: str | None = None

    def for_rule(self, a, b, sim, *, voter: bool = False):
        """``sim`` (P,) as the rule may use it: NaN where both images of a pair are smooth (the model is not
        consulted there: distinct colour fields and gradients look alike to it, 0.90-0.975), else unchanged.
        ``voter``: for a vote of ``b``'s group on ``a`` joining it (:func:`maya.dedup.stars.attach_by_majority`),
        NaN wherever ``a`` is smooth: a smooth file left out is never joined by what the model says (a JPEG copy
        of a smooth field is often just structured enough to head a star the others would vote into)."""
        import numpy as np

        if sim is None or self.smooth is None or not len(sim):
            return sim
        mask = self.smooth[np.asarray(a, np.int64)]
        if not voter:
            mask = mask & self.smooth[np.asarray(b, np.int64)]
        return np.where(mask, np.nan, sim) if mask.any() else sim

    def pair_grid(self, a, b, sim, floor: float) -> np.ndarray | None:
        """The cell agreement (float64 (P,), :func:`maya.hashing.grid.agreement`) of pairs ``a[k]``, ``b[k]``
        whose similarity ``sim`` is at least ``floor`` (NaN for the others), or None without thumbnails."""
        import numpy as np
        from maya.hashing import grid

        if self.grid is None or sim is None:
            return None
        out = np.full(len(sim), np.nan)
        with np.errstate(invalid="ignore"):
            ask = np.flatnonzero(np.asarray(sim, np.float64) >= floor)
        if ask.size:
            a, b = np.asarray(a, np.int64)[ask], np.asarray(b, np.int64)[ask]
            if self.grid_stats is None:
                self.grid_stats = grid.cell_stats(self.grid)
            out[ask] = grid.agreement_of(self.grid, *self.grid_stats, a, b)
        return out

    def pair_scale(self, a, b) -> np.ndarray | None:
        """The local scale of pairs ``a[k]``, ``b[k]`` (the larger of the two images'), or None without one."""
        import numpy as np

        if self.scale is None:
            return None
        return np.maximum(self.scale[np.asarray(a, dtype=np.int64)], self.scale[np.asarray(b, dtype=np.int64)])

    def _view_slots(self, idx) -> list[tuple[np.ndarray, np.ndarray]]:
        """The views of each image of ``idx``, slot by slot: per slot ``(row, kind)``, int64 / int8 (len(idx),):
        the row in the view arrays of the image's s-th view (-1: none) and its kind (index into
        ``view_names``)."""
        import numpy as np

        if self.view_of is None or not self.view_of.size:
            return []
        cached = getattr(self, "_slot_table", None)
        if cached is None or cached[0] is not self.view_of:  # once per set of views: (n,) rows per slot
            kind = np.ones(self.view_of.size, np.int8) if self.view_kind is None else self.view_kind
            order = np.argsort(self.view_of, kind="stable")
            owner = self.view_of[order]
            rank = np.arange(owner.size) - np.searchsorted(owner, owner)  # rank of each view among its image's
            table = []
            for s in range(int(rank.max()) + 1):
                rows = np.full(len(self.sha256), -1, dtype=np.int64)
                rows[owner[rank == s]] = order[rank == s]
                table.append((rows, np.where(rows >= 0, kind[np.maximum(rows, 0)], 0).astype(np.int8)))
            cached = self._slot_table = (self.view_of, table)
        idx = np.asarray(idx, dtype=np.int64)
        return [(rows[idx], kinds[idx]) for rows, kinds in cached[1]]

    def view_rows(self, idx, name: str = "inner") -> np.ndarray:
        """Row in the view arrays of each image of ``idx``'s view of kind ``name`` (int64, -1: none)."""
        import numpy as np

        out = np.full(len(np.asarray(idx)), -1, dtype=np.int64)
        if name not in self.view_names:
            return out
        code = self.view_names.index(name)
        for rows, kinds in self._view_slots(idx):
            hit = (rows >= 0) & (kinds == code)
            out[hit] = rows[hit]
        return out

    def view_pair_name(self, code: int) -> str:
        """``"<first image's view>/<second image's view>"`` of a code from :meth:`similarity_views` or
        :meth:`phash_views`, e.g. ``"inner/whole"``."""
        k = len(self.view_names)
        return f"{self.view_names[int(code) // k]}/{self.view_names[int(code) % k]}"

    def similarity(self, a, b) -> np.ndarray:
        """Cosine similarity (float64) of images ``a[k]``, ``b[k]`` over their best pair of views (whole
        images and inner views)."""
        return self.similarity_views(a, b)[0]

    def similarity_views(self, a, b) -> tuple[np.ndarray, np.ndarray]:
        """``(similarity, views)``: as :meth:`similarity`, and which pair of views reached it (int8 (P,), a
        code for :meth:`view_pair_name`; 0: the whole images)."""
        import numpy as np

        sim = pair_similarity(self.vectors, a, b)
        which = np.zeros(len(sim), np.int8)
        if self.view_vectors is None or not self.view_vectors.size or not len(sim):
            return sim, which
        whole_a, whole_b = (np.asarray(x, dtype=np.int64) for x in (a, b))
        for x, y, ok, code in self._view_combinations(a, b):
            pick = np.flatnonzero(ok)  # only the pairs that have these views: few, and never a (P, dim) gather
            if not pick.size:
                continue
            s = pair_similarity(self.view_vectors if x is not None else self.vectors,
                                (x if x is not None else whole_a)[pick], (y if y is not None else whole_b)[pick],
                                other=self.view_vectors if y is not None else self.vectors)
            better = s > sim[pick]
            sim[pick[better]] = s[better]
            which[pick[better]] = np.broadcast_to(code, ok.shape)[pick[better]]
        return sim, which

    def _view_combinations(self, a, b):
        """Per pair of views other than (whole, whole): ``(rows of a or None: whole, rows of b or None, ok,
        code)``, arrays over the pairs ``(a[k], b[k])``."""
        import numpy as np

        k = len(self.view_names)
        sa, sb = self._view_slots(a), self._view_slots(b)
        zero = np.zeros(len(a), np.int8)
        for ra, ka in sa:
            yield ra, None, ra >= 0, ka.astype(np.int64) * k
        for rb, kb in sb:
            yield None, rb, rb >= 0, kb.astype(np.int64) + zero
        for ra, ka in sa:
            for rb, kb in sb:
                yield ra, rb, (ra >= 0) & (rb >= 0), ka.astype(np.int64) * k + kb

    def phash_distance(self, a, b) -> np.ndarray:
        """pHash distance in bits (int64) of images ``a[k]``, ``b[k]``: the dihedral distance (least over the 8
        flips/turns) when the variants are loaded, else the plain Hamming distance."""
        return self.phash_match(a, b)[0]

    def phash_match(self, a, b) -> tuple[np.ndarray, np.ndarray]:
        """``(distance, variant)``: as :meth:`phash_distance`, and the variant index (int8) that reached it
        (0, identity, without variants)."""
        return self.phash_views(a, b)[:2]

    def phash_views(self, a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(distance, variant, views)``: as :meth:`phash_match`, and which pair of views reached the
        distance (int8, a code for :meth:`view_pair_name`; the variant is of the whole images)."""
        import numpy as np
        from maya.hashing import dihedral, hamming

        if self.variants is None:
            d, k = hamming(self.hashes[a], self.hashes[b]).astype(np.int64), np.zeros(len(a), np.int8)
        else:
            d, k = dihedral.distance(self.variants[a], self.variants[b])
        which = np.zeros(len(d), np.int8)
        if self.view_hashes is not None and self.view_hashes.size and len(d):
            whole_a, whole_b = (np.asarray(x, dtype=np.int64) for x in (a, b))
            for x, y, ok, code in self._view_combinations(a, b):
                ha = self.view_hashes[np.maximum(x, 0)] if x is not None else self.hashes[whole_a]
                hb = self.view_hashes[np.maximum(y, 0)] if y is not None else self.hashes[whole_b]
                dv = hamming(ha, hb).astype(np.int64)
                better = ok & (dv < d)
                d, which = np.where(better, dv, d), np.where(better, code, which).astype(np.int8)
        return d, k, which


def load_images(con, shas: Sequence[str], model_id: str | None, *, views: bool = False,
                extra_views: Sequence[str] = (), grid: bool = False) -> Images:
    """Read the features of ``shas`` from the store (vectors a chunk at a time straight into one matrix:
    :func:`maya.store.dedup.embedding_matrix`); with
    ``views``, their stored second views too, and the fixed ``extra_views`` (``maya.views.EXTRA_VIEWS``); with
    ``grid``, the grey thumbnails of the grid clause (when every image has one: else the clause has none)."""
    import numpy as np
    from maya import store
    from maya.hashing import DEFAULT, dihedral, structure
    from maya.store import dedup as dedup_store
    from maya.store import variants as variant_store

    shas = list(shas)
    hashes_by = store.load_hashes(con, shas, DEFAULT.name)
    hashes = np.array([hashes_by[s] for s in shas], dtype=np.uint64)
    width, height = dedup_store.image_sizes(con, shas)
    vectors = None
    if model_id is not None and shas:
        vectors = dedup_store.embedding_matrix(con, shas, model_id)
    variants = variant_store.variant_matrix(con, shas, dihedral.ALGORITHM)  # None: plain pHash only (older runs)
    struct = store.load_structure(con, shas, DEFAULT.name)
    std = np.array([struct.get(s, (np.inf, None))[0] for s in shas], dtype=np.float64)
    pixels = [struct.get(s, (np.inf, None))[1] for s in shas]
    images = Images(shas, hashes, vectors, width, height, variants,
                    low_structure=structure.is_low_structure(std), pixels=pixels)
    if views or extra_views:
        _load_views(con, images, model_id, inner=views, extra=tuple(extra_views))
    if (grid or model_id is not None) and shas:  # the thumbnails say which images are smooth, with or without grid
        from maya.hashing import grid as grid_hash

        cells = _load_grid_cells(con, shas)
        if cells is not None:
            stats = grid_hash.cell_stats(cells)
            # near-uniform images (low structure) are the model's to decide: pHash says nothing about them (issue 13)
            images.smooth = grid_hash.smooth(stats[1]) & ~np.asarray(images.low_structure, bool)
            if grid:
                images.grid, images.grid_stats = cells, stats
    return images


def _load_grid_cells(con, shas: Sequence[str], chunk: int = 1024):
    """The grid thumbnails of ``shas`` in cell order (uint8 (n, cells, pixels), :func:`maya.hashing.grid.cells`),
    read ``chunk`` contents at a time straight into one array (DuckDB's cache of their pages dropped after each:
    :func:`maya.store.drop_cache`); None when one has none (a store of older workers' batches: then there is no
    grid clause)."""
    import numpy as np
    from maya import store

    from maya.hashing import grid as grid_hash
    from maya.store import grid as grid_store

    out = np.empty((len(shas), grid_hash.GRID * grid_hash.GRID, grid_hash.CELL * grid_hash.CELL), np.uint8)
    for start in range(0, len(shas), chunk):
        part = shas[start:start + chunk]
        thumbs = grid_store.load_thumbs(con, part, grid_hash.ALGORITHM)
        if not all(s in thumbs for s in part):
            return None
        out[start:start + len(part)] = grid_hash.cells(np.stack([thumbs[s] for s in part]))
        del thumbs
        store.drop_cache(con)
    return out


def _load_views(con, images: Images, model_id: str | None, inner: bool = True, extra: tuple = ()) -> None:
    """Fill the view arrays of ``images`` from the store (``maya.view_features``): views with a pHash and,
    with ``model_id``, an embedding; the inner views (with ``inner``) and the fixed ``extra`` views."""
    import numpy as np
    from maya import store, view_features, views

    kinds = []  # (name, sha256s that may have it, hash id, model id)
    if inner:
        boxes = view_features.stored_boxes(con, images.sha256)
        kinds.append(("inner", [s for s in images.sha256 if boxes.get(s) is not None], view_features.hash_id(),
                      views.view_feature_id(model_id) if model_id else None))
    for name in extra:
        kinds.append((name, images.sha256, *view_features.extra_ids(name, model_id)))
    index_of = {s: k for k, s in enumerate(images.sha256)}
    of, kind, bits, vecs, box = [], [], [], [], []
    for k, (name, shas, hid, eid) in enumerate(kinds, start=1):
        vh = store.load_hashes(con, shas, hid)
        ve = store.load_embeddings(con, shas, eid) if eid else {}
        keep = [s for s in shas if s in vh and (model_id is None or s in ve)]
        of += [index_of[s] for s in keep]
        kind += [k] * len(keep)
        bits += [vh[s] for s in keep]
        box += [boxes[s] if name == "inner" else views.EXTRA_VIEWS[name][1] for s in keep]
        vecs += [ve[s] for s in keep] if model_id else []
    images.view_names = ("whole", *(name for name, *_ in kinds))
    images.view_of = np.array(of, dtype=np.int64)
    images.view_kind = np.array(kind, dtype=np.int8)
    images.view_hashes = np.array(bits, dtype=np.uint64)
    images.view_boxes = np.array(box, dtype=np.float64).reshape(-1, 4)
    if model_id is not None and images.vectors is not None:
        dim = images.vectors.shape[1]
        images.view_vectors = (np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, dim), np.float32))


@dataclass
class Pairs:
    """Pairs of images (indices into :class:`Images`), ``a < b``, sorted by (a, b)."""

    a: np.ndarray  # int64 (P,)
    b: np.ndarray  # int64 (P,)
    phash_distance: np.ndarray  # int64 (P,), bits
    clip_similarity: np.ndarray  # float64 (P,); NaN without embeddings
    rule: np.ndarray  # object (P,): "phash" | "phash+clip" | "clip" ("" before verification)
    variant: np.ndarray | None = None  # int8 (P,): the flip/turn of the dihedral pHash match; None: plain pHash

    def __len__(self) -> int:
        return int(self.a.size)

    def variant_names(self) -> np.ndarray:
        """Object (P,): the variant of each pair's pHash distance ('identity', 'mirror', 'rotate90', ...;
        ``maya.hashing.dihedral.VARIANTS``), None where only the plain pHash was compared."""
        import numpy as np
        from maya.hashing import dihedral

        if self.variant is None:
            return np.full(len(self), None, dtype=object)
        return np.array(dihedral.VARIANTS, dtype=object)[self.variant.astype(np.int64)]


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
        if images.variants is not None:  # mirrored / turned copies: far apart in plain pHash
            ta, tb = turned_pairs(images, radius)
            parts_a.append(ta)
            parts_b.append(tb)
        if images.view_hashes is not None and images.view_hashes.size:  # a view near an image or a view
            qi, ii, _ = hash_index.query_within(np.concatenate([images.hashes, images.view_hashes]),
                                                images.view_hashes, radius)
            parts_a.append(images.view_of[qi])
            parts_b.append(np.concatenate([np.arange(n), images.view_of])[ii])
    if n >= 2 and options.mode in ("clip", "hybrid") and images.vectors is not None:
        vectors, owner = images.vectors, np.arange(n)
        if images.view_vectors is not None and images.view_vectors.size:  # neighbours among views too
            vectors = np.concatenate([vectors, images.view_vectors])
            owner = np.concatenate([owner, images.view_of])
        deep = options.uses_local or options.uses_majority or options.uses_grid
        # exact below ann.EXACT_MAX or without faiss; folding views into images needs a deeper answer
        idx, sim = ann.self_topk(vectors, 2 * options.clip_k + 1 if deep else options.clip_k)
        threshold = options.clip_strict
        if deep:  # the neighbours of each image (views folded in) for the local scale and the majority vote
            images.near = fold_neighbours(owner[np.repeat(np.arange(idx.shape[0]), idx.shape[1])], owner[idx.ravel()],
                                          sim.ravel())
        if options.uses_local:
            images.scale = local_scale(*images.near, n, options.clip_k)
            threshold = min(float(options.clip_strict if options.clip_strict is not None else np.inf),
                            float(options.clip_local_floor))
        ca, cb = knn.pairs_above(idx, sim, threshold)
        parts_a.append(owner[ca])
        parts_b.append(owner[cb])
        if options.uses_grid and images.grid is not None:  # plausible neighbours for the cell agreement to decide
            na, nb, ns = images.near
            keep = ns >= float(options.grid_floor)
            parts_a.append(na[keep])
            parts_b.append(nb[keep])
    if not parts_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    a = np.concatenate(parts_a).astype(np.int64)
    b = np.concatenate(parts_b).astype(np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = np.unique((lo * n + hi)[lo != hi])  # an image and its own view are no pair
    return key // n, key % n


def fold_neighbours(a: np.ndarray, b: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k-NN answers ``(query image, neighbour image, cosine similarity)`` (M,) with views mapped to their images,
    as one row per ordered pair of distinct images (its best similarity): ``(a, b, sim)`` int64, int64, float64."""
    import numpy as np

    a, b, sim = np.asarray(a, np.int64), np.asarray(b, np.int64), np.asarray(sim, np.float64)
    other = a != b
    a, b, sim = a[other], b[other], sim[other]
    order = np.lexsort((-sim, b, a))  # per (a, b) the best similarity first
    a, b, sim = a[order], b[order], sim[order]
    first = np.ones(a.size, bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return a[first], b[first], sim[first]


def local_scale(a: np.ndarray, b: np.ndarray, sim: np.ndarray, n: int, k: int) -> np.ndarray:
    """Each image's similarity to its ``k``-th nearest other image: float64 (n,), +inf for an image with fewer
    than ``k`` neighbours in the answer (no local clause for it: too few images to know its scale).

    ``a``, ``b``, ``sim`` (M,): neighbour pairs from :func:`fold_neighbours` (query image, neighbour, cosine).
    """
    import numpy as np

    order = np.lexsort((-sim, a))  # per image its neighbours, most similar first
    a, sim = a[order], sim[order]
    start = np.searchsorted(a, np.arange(n))
    count = np.searchsorted(a, np.arange(n), side="right") - start
    out = np.full(n, np.inf)
    has = count >= k
    out[has] = sim[start[has] + k - 1]
    return out


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


def turned_pairs(images: Images, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Image pairs within ``radius`` bits only through a flip or quarter turn (:func:`_turned_pairs`); with
    ``images.pair_cache``, those among contents searched by an earlier run come from its file and only the new
    contents are searched (:mod:`maya.index.turned`: the same pairs, O(new) on a rerun over a grown folder)."""
    if images.pair_cache is None:
        return _turned_pairs(images.variants, radius)
    from maya.hashing import dihedral
    from maya.index.turned import turned_pairs as kept_pairs

    return kept_pairs(images.pair_cache, dihedral.ALGORITHM, images.sha256, images.variants, radius, _turned_pairs)


def _turned_pairs(variants: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Image pairs within ``radius`` bits only through a flip or quarter turn (the dihedral radius search on
    the distinct rows of ``variants``, (n, 8) uint64; pairs it finds at variant 0 the plain search has)."""
    import numpy as np
    from maya.hashing import dihedral

    rows, inverse, counts = np.unique(variants, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    ra, rb, _, k = dihedral.pairs_within(rows, radius)
    ra, rb = ra[k != 0], rb[k != 0]
    order = np.argsort(inverse, kind="stable")  # images grouped by row
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    na, nb = counts[ra], counts[rb]
    sizes = na * nb
    pair = np.repeat(np.arange(ra.size), sizes)
    j = np.arange(pair.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    x, y = np.divmod(j, nb[pair])
    return order[starts[ra[pair]] + x], order[starts[rb[pair]] + y]


def pair_similarity(vectors: np.ndarray, a: np.ndarray, b: np.ndarray, *,
                    other: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity (float64 (P,)) of rows ``a[k]`` of unit ``vectors`` and ``b[k]`` of ``other`` (default
    ``vectors``), in chunks of about :data:`_GATHER_BYTES` of gathered rows, so memory does not grow with P."""
    import numpy as np

    other = vectors if other is None else other
    out = np.empty(len(a), dtype=np.float64)
    chunk = max(256, _GATHER_BYTES // max(1, vectors.shape[1] * vectors.itemsize))
    for s in range(0, len(a), chunk):
        va, vb = vectors[a[s:s + chunk]], other[b[s:s + chunk]]
        out[s:s + chunk] = np.einsum("ij,ij->i", va, vb, dtype=np.float64)
    return out


#: Bytes of gathered embedding rows per side in :func:`pair_similarity` (4 MiB: ~800 rows of 1280 float32).
_GATHER_BYTES = 4 << 20


def decide(d: np.ndarray, sim: np.ndarray | None, options: DedupOptions,
           unhashable: np.ndarray | None = None, identical: np.ndarray | None = None,
           scale: np.ndarray | None = None, grid: np.ndarray | None = None) -> np.ndarray:
    """The clause that accepted each pair: ``"phash"``, ``"phash+clip"``, ``"clip"``, or ``""`` (no match).

    ``d``: (P,) pHash distances in bits; ``sim``: (P,) cosine similarities, or None without embeddings
    (then only the pHash clause can match). Returns an object array (P,). The rule is
    :attr:`DedupOptions.rule` (:mod:`maya.rule`); the mode decides which clauses it has.

    The low-structure hook: ``unhashable`` (P,) bool marks pairs with a low-structure image; their
    pHash distance says nothing, so the rule sees it as beyond every band (no pHash clause: the model
    decides, by its embedding-only clause). ``identical`` (P,) bool marks pixel-identical pairs, which
    match as ``"phash"`` whatever the mode. ``scale`` (P,): the pairs' local scale (:meth:`Images.pair_scale`), or
    None (no local clause). ``grid`` (P,): the pairs' cell agreement (:meth:`Images.pair_grid`), or None (no grid
    clause).
    """
    import numpy as np

    if options.mode == "phash":
        sim = None
    if unhashable is not None and unhashable.any():
        d = np.where(unhashable, 65, d)
    out = options.rule.clauses(d, sim, scale if options.uses_local else None, grid if options.uses_grid else None)
    if identical is not None:
        out[identical & (out == "")] = "phash"
    return out


def structure_masks(images: Images, a, b, d) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(d, unhashable, identical)`` for the pairs ``a[k]``, ``b[k]`` with pHash distances ``d``: which pairs
    hold a low-structure image (their pHash says nothing) and which of those are pixel-identical (their
    distance becomes 0). The masks :func:`decide` takes; every caller of the rule on images passes them."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    low = _low_structure(images)
    unhashable = low[a] | low[b]
    identical = np.zeros(len(a), bool)
    if unhashable.any() and images.pixels is not None:
        px = np.array(images.pixels, dtype=object)
        identical = (unhashable & (px[a] == px[b]) & (images.width[a] == images.width[b])
                     & (images.height[a] == images.height[b]) & np.array([p is not None for p in px[a]], bool))
        d = np.where(identical, 0, d)
    return d, unhashable, identical


def pair_grid(images: Images, a, b, sim, options: DedupOptions) -> np.ndarray | None:
    """The grid clause's input for :func:`decide` (:meth:`Images.pair_grid` at the options' floor), or None when
    the options have no grid clause."""
    if not options.uses_grid or sim is None:
        return None
    return images.pair_grid(a, b, sim, float(options.grid_floor))


def verify_pairs(images: Images, a: np.ndarray, b: np.ndarray, options: DedupOptions) -> Pairs:
    """Score candidates (pHash distance; similarity when there are embeddings) and keep those the rule accepts."""
    import numpy as np

    d, variant = images.phash_match(a, b)  # dihedral when the variants are loaded
    use_sim = options.uses_embeddings and images.vectors is not None
    sim = images.similarity(a, b) if use_sim else np.full(len(a), np.nan)
    d, unhashable, identical = structure_masks(images, a, b, d)
    ruled = images.for_rule(a, b, sim) if use_sim else None
    rule = decide(d, ruled, options, unhashable, identical, images.pair_scale(a, b),
                  pair_grid(images, a, b, ruled, options))
    if options.uses_phash_majority:  # smooth pictures' pHashes are alike (low frequencies only): they cast no vote
        within = (d >= 0) & (d <= options.phash_radius) & ~unhashable
        if images.smooth is not None:
            within &= ~(images.smooth[np.asarray(a, np.int64)] | images.smooth[np.asarray(b, np.int64)])
        images.phash_near = (np.asarray(a, np.int64)[within], np.asarray(b, np.int64)[within])
    keep = rule != ""
    return Pairs(a[keep], b[keep], d[keep], sim[keep], rule[keep],
                 None if images.variants is None else variant[keep])
