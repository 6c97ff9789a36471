"""``maya search``: is this image already in my collection? Near-duplicates of query images in the store.

The collection is every content an earlier ``maya dedup`` of the same data folder identified (its
``files`` rows) with the features the mode needs. Only the query images are read and decoded (once:
``maya.features.compute_batch``, the one feature computation); the collection's features come from the
index files (:mod:`maya.index.collection`, brought up to date with DuckDB first), never from its images.

For each query (pHash bits q, unit embedding e):

1. candidates: collection hashes within the mode's pHash radius of q (XOR + popcount over the index,
   exact; the multi-index search of ``maya.hashing.index`` when many queries meet a large index), and the
   ``max(top, clip_k)`` most similar embeddings to e (``maya.embedding.ann``: exact blockwise, faiss IVF
   for a large index);
2. each candidate is scored (pHash distance in bits, cosine similarity) and decided by the one rule of
   the mode (:attr:`maya.dedup.options.DedupOptions.rule`, thresholds as in dedup), whose first accepting
   clause is reported as ``match``;
3. the ``top`` best matches (by similarity, else by distance), one entry per readable path of the content.

The result is the JSON of ``maya search --json``::

    {"queries": [{"path": ..., "matches": [{"path", "sha256", "phash_distance", "clip_similarity",
                                            "match"}]}],
     "errors": [{"path": ..., "error": "<reason>: <detail>"}]}

:func:`run_search` also returns what the table view prints (the thresholds used, the model, the size
of the collection); :func:`search` (``maya.search``) returns the JSON structure alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from maya.dedup.options import DedupOptions, DedupUsageError, check_roots
from maya.index.collection import positions

#: Matches listed per query unless told.
DEFAULT_TOP = 10
#: Query images decoded per batch.
QUERY_BATCH = 64
#: Queries x index hashes below which each query is compared with every hash (XOR + popcount).
BRUTE_HASH_CELLS = 1 << 28


class NoCollectionError(DedupUsageError):
    """There is nothing to search in: no store, or no features of the asked kind in it."""


@dataclass
class QueryFeatures:
    """The usable queries: path, sha256, pHash bits, embedding (aligned); the problems of the others."""

    paths: list[str]
    shas: list[str]
    hashes: np.ndarray  # uint64 (Q,)
    vectors: np.ndarray | None  # float32 (Q, d)
    errors: list[dict]


def query_features(roots: Sequence[str], model_spec, *, max_pixels=None, follow_symlinks=False,
                   include_hidden=False) -> QueryFeatures:
    """Walk the query paths (the one walker), identify and decode each file once, hash and embed it."""
    from maya import features
    from maya.io import ingest

    walk = ingest.walk_images(roots, follow_symlinks=follow_symlinks, include_hidden=include_hidden)
    errors = [{"path": p.path, "error": p.error} for p in walk.problems]
    paths = [f.path for f in walk.files]
    idents = ingest.sha256_files(paths)
    items = []
    for path, (sha, prob) in zip(paths, idents):
        if sha is None:
            errors.append({"path": path, "error": prob.error})
        else:
            items.append((sha, path))
    out_paths, shas, bits, vecs = [], [], [], []
    for s in range(0, len(items), QUERY_BATCH):
        batch = items[s:s + QUERY_BATCH]
        got = features.compute_batch(batch, True, model_spec, max_pixels)
        hash_of = dict(zip(got.hash_shas, got.hash_bits.tolist()))
        vec_of = dict(zip(got.embed_shas, got.vectors)) if got.vectors is not None else {}
        for (sha, path), rec in zip(batch, got.records):
            if rec.status != "ok" or sha not in hash_of or (model_spec is not None and sha not in vec_of):
                errors.append({"path": path, "error": rec.error or "not_an_image: no features"})
                continue
            out_paths.append(path)
            shas.append(sha)
            bits.append(hash_of[sha])
            if model_spec is not None:
                vecs.append(vec_of[sha])
    vectors = np.stack(vecs).astype(np.float32) if vecs else (None if model_spec is None else np.zeros((0, 0), np.float32))
    return QueryFeatures(out_paths, shas, np.array(bits, dtype=np.uint64), vectors,
                         sorted(errors, key=lambda e: e["path"]))


def hash_candidates(index_hashes: np.ndarray, query_hashes: np.ndarray, radius: int) -> list[np.ndarray]:
    """Per query, the positions (int64) of the index hashes within ``radius`` bits; exact."""
    if radius < 0 or index_hashes.size == 0:
        return [np.zeros(0, np.int64) for _ in query_hashes]
    if query_hashes.size * index_hashes.size <= BRUTE_HASH_CELLS:
        return [np.flatnonzero(np.bitwise_count(index_hashes ^ q) <= radius) for q in query_hashes]
    from maya.hashing import index as hash_index

    qi, ii, _ = hash_index.query_within(index_hashes, query_hashes, radius)
    cuts = np.searchsorted(qi, np.arange(query_hashes.size + 1))
    return [ii[cuts[j]:cuts[j + 1]] for j in range(query_hashes.size)]


class Collection:
    """The searchable collection: index parts loaded once, queried many times (the benchmark and a long-lived
    caller keep one; :func:`run_search` builds one per call). ``con``: the store, asked only for the paths
    of matched contents. ``hashes`` / ``embeddings``: :class:`maya.index.collection.IndexPart` s
    (:meth:`from_store` loads them current). ``keep_paths``: read every content's paths once, at the first
    :meth:`match`, and answer later ones from memory (a binary search, ~0.1 ms, where asking the store scans
    ``files``: ~45 ms at 1M rows); False: ask the store at each call (one query per call: what a single
    :func:`run_search` wants). Like the index parts, the kept paths are those of when they were read.
    ``ann_path``: the file the faiss index of a large embeddings part is kept in (:mod:`maya.index.ann_file`:
    loaded, appended to or built and saved; None: built in memory); ``write_ann``: save it when it changed."""

    def __init__(self, con, options: DedupOptions, model_id: str | None, hashes, embeddings=None, *,
                 neighbours: str = "auto", keep_paths: bool = True, ann_path=None, write_ann: bool = True):
        from maya.embedding import ann

        self.con, self.options, self.model_id = con, options, model_id
        self.hashes, self.embeddings = hashes, embeddings
        self.keep_paths, self._paths = keep_paths, None
        if len(hashes) == 0:
            raise NoCollectionError("the collection is empty: run `maya dedup DIR` with this data folder first")
        self.ann_index, self.method, self.ann_how = None, None, None
        self._sorted: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # part -> (sorted sha256, argsort)
        if options.uses_embeddings:
            if embeddings is None or len(embeddings) == 0:
                raise NoCollectionError(f"the collection has no embeddings of {model_id}: run `maya dedup` with "
                                        "this model first, or search with --mode phash")
            self.method = ann.choose_method(len(embeddings), neighbours)
            if self.method == "ivf":
                from maya.index import ann_file

                self.ann_index, self.ann_how = ann_file.load_or_build(embeddings, ann_path, write=write_ann)

    @classmethod
    def from_store(cls, con, db_path, options: DedupOptions, model_id: str | None, *, neighbours: str = "auto",
                   write_index: bool = True, keep_paths: bool = True) -> "Collection":
        """The collection of the store ``con`` (file ``db_path``; None: nothing written), its index current."""
        from maya.hashing import DEFAULT
        from maya.index.collection import index_dir, part_path, refresh

        folder = index_dir(db_path) if db_path is not None else None
        hashes = refresh(con, folder, "hashes", DEFAULT.name, write=write_index)
        embeddings = refresh(con, folder, "embeddings", model_id, write=write_index) if options.uses_embeddings else None
        return cls(con, options, model_id, hashes, embeddings, neighbours=neighbours, keep_paths=keep_paths,
                   ann_path=part_path(folder, "ann", model_id) if folder is not None and model_id else None,
                   write_ann=write_index)

    def _lookup(self, name: str, shas: np.ndarray) -> np.ndarray:
        if name not in self._sorted:  # once per collection: O(N log N), then O(log N) per candidate
            part = getattr(self, name)
            order = np.argsort(part.sha256, kind="stable")
            self._sorted[name] = (part.sha256[order], order)
        return positions(*self._sorted[name], shas)

    def match(self, queries: QueryFeatures, top: int = DEFAULT_TOP) -> list[dict]:
        """Per query ``{"path", "matches": [...]}`` (see the module docstring)."""
        from maya.embedding import ann
        from maya.store import index as index_store

        opts = self.options
        radius = {"phash": opts.phash_accept, "hybrid": opts.phash_radius}.get(opts.mode, -1)
        per_query = [self.hashes.sha256[pos] for pos in hash_candidates(self.hashes.values, queries.hashes, radius)]
        if self.embeddings is not None and queries.shas:
            idx, _ = ann.query_topk(self.embeddings.values, queries.vectors, max(top, opts.clip_k),
                                    method=self.method, index=self.ann_index)
            per_query = [np.concatenate([c, self.embeddings.sha256[row[row >= 0]]]) for c, row in zip(per_query, idx)]
        scored = []
        for j, cands in enumerate(per_query):
            cands = np.unique(cands)
            hpos = self._lookup("hashes", cands)
            keep = hpos >= 0
            if self.embeddings is not None:
                epos = self._lookup("embeddings", cands)
                keep &= epos >= 0
                epos = epos[keep]
            cands, hpos = cands[keep], hpos[keep]
            d = np.bitwise_count(self.hashes.values[hpos] ^ queries.hashes[j]).astype(np.int64)
            sim = None
            if self.embeddings is not None:
                sim = (self.embeddings.values[epos] @ queries.vectors[j]).astype(np.float64)
            clause = opts.rule.clauses(d, None if opts.mode == "phash" else sim)
            ok = np.flatnonzero(clause != "")
            ok = sorted(ok, key=lambda i: (-(sim[i] if sim is not None else 0.0), d[i], cands[i]))
            scored.append([(cands[i].decode("ascii"), int(d[i]), None if sim is None else float(sim[i]),
                            str(clause[i])) for i in ok])
        wanted = {m[0] for ms in scored for m in ms}
        if self.keep_paths:
            if self._paths is None:
                self._paths = index_store.all_file_paths(self.con)
            paths = index_store.paths_in(self._paths, wanted)
        else:
            paths = index_store.file_paths(self.con, wanted)
        out = []
        for j, ms in enumerate(scored):
            ms = [m for m in ms if m[0] in paths][:top]  # contents no file of the collection holds are not in it
            out.append({"path": queries.paths[j], "matches": [
                {"path": p, "sha256": sha, "phash_distance": d,
                 "clip_similarity": None if sim is None else round(sim, 6), "match": clause}
                for sha, d, sim, clause in ms for p in paths[sha]]})
        return out


@dataclass
class SearchRun:
    """A search: the report (the JSON structure), the options after defaults were filled, the model id,
    the collection's size per index part, and how each part was brought up to date."""

    report: dict
    options: DedupOptions
    model_id: str | None
    collection: dict


def search(paths, mode: str = "hybrid", **kwargs) -> dict:
    """Near-duplicates in the collection of each query image: the JSON structure of ``maya search --json``.
    Arguments as in :func:`run_search`."""
    return run_search(paths, mode, **kwargs).report


def run_search(
    paths,
    mode: str = "hybrid",
    *,
    db_path: str | os.PathLike | None = None,
    top: int = DEFAULT_TOP,
    options: DedupOptions | None = None,
    model: str | None = None,
    device: str | None = None,
    precision: str = "auto",
    batch_size: int | None = None,
    max_pixels: int | None = None,
    follow_symlinks: bool = False,
    include_hidden: bool = False,
    neighbours: str = "auto",
    calibration: str | None = None,
    **thresholds,
) -> SearchRun:
    """Near-duplicates in the collection of the store ``db_path`` of each image under ``paths``.

    Args:
        paths: query images, or folders of them (searched recursively), or a list of them.
        mode, thresholds (``phash_accept``, ``phash_radius``, ``clip_verify``, ``clip_strict``, ``clip_k``):
            as in :func:`maya.find_duplicates` (or pass ``options``, a :class:`DedupOptions`).
        db_path: the store an earlier ``maya dedup`` wrote (default: the settings' ``db_path``).
        top: most matches listed per query (each content with all its readable paths).
        model, device, precision, batch_size, max_pixels, follow_symlinks, include_hidden: as in dedup.
        neighbours: ``auto``, ``exact`` or ``ivf`` (``maya.embedding.ann``).
        calibration: as ``maya dedup --calibration`` (the thresholds' named source; default the model's
            built-in defaults, see :func:`maya.dedup.options.resolve_thresholds`).

    Returns a :class:`SearchRun` (its ``report``: the JSON structure of the module docstring). Raises
    :class:`NoCollectionError` when there is nothing to search, :class:`DedupUsageError` for bad settings.
    """
    from maya import features, store
    from maya.dedup.options import resolve_thresholds

    options = (options or DedupOptions(mode, **thresholds)).check()
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise DedupUsageError(f"top must be a whole number >= 1, got {top!r}")
    roots = check_roots(paths)
    if db_path is None:
        from maya.settings import load_settings

        db_path = load_settings().db_path
    if not os.path.exists(db_path):
        raise NoCollectionError(f"no collection at {db_path}: index one first with `maya dedup DIR`")
    spec, model_id = None, None
    if options.uses_embeddings:
        from maya.settings import DEFAULT_MODEL

        spec = features.ModelSpec(model or DEFAULT_MODEL, device, precision or "auto", batch_size)
        model_id = features.get_embedder(spec).model_id
    con = store.connect(db_path, read_only=True)
    try:
        options, _ = resolve_thresholds(con, options, spec.name if spec else None, model_id, calibration)
        collection = Collection.from_store(con, db_path, options, model_id, neighbours=neighbours, keep_paths=False)
        queries = query_features(roots, spec, max_pixels=max_pixels, follow_symlinks=follow_symlinks,
                                 include_hidden=include_hidden)
        results = collection.match(queries, top)
    finally:
        con.close()
    parts = {"hashes": (len(collection.hashes), collection.hashes.how)}
    if collection.embeddings is not None:
        how = collection.embeddings.how
        parts["embeddings"] = (len(collection.embeddings), how if collection.ann_how is None else
                               f"{how}; faiss index {collection.ann_how}")
    return SearchRun({"queries": results, "errors": queries.errors}, options, model_id, parts)
