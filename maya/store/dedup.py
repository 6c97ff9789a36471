"""Dedup's SQL: the run and its results (sql/dedup.sql tables), and the reads the dedup steps make.

Writes: :func:`start_dedup_run` (a ``runs`` row) and :func:`save_dedup_results` (``dedup_pairs``,
``dedup_groups``, ``dedup_members``, ``dedup_errors``, ``dedup_runs``, one transaction). Reads: the
thresholds a named evaluate run calibrates (``--calibration``), the features of the images to compare (pHash bits,
pixel sizes, an (n, dim) float32 embedding matrix filled in chunks), which contents already have an
embedding of a model. Lists of sha256 are joined as registered numpy columns, never spliced into SQL.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from maya import store
from maya.io.ingest import path_text


def calibration_run(con, name: str, model_id: str | None) -> int | None:
    """The completed evaluate run ``name`` names for ``model_id``: a run id, or a dataset (its latest such run)."""
    if name.isdigit():
        row = con.execute("SELECT run_id FROM runs WHERE run_id = ? AND flow = 'evaluate' AND status = 'completed' "
                          "AND model IS NOT DISTINCT FROM ?", [int(name), model_id]).fetchone()
    else:
        row = con.execute("SELECT max(run_id) FROM runs WHERE dataset = ? AND flow = 'evaluate' "
                          "AND status = 'completed' AND model IS NOT DISTINCT FROM ?", [name, model_id]).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _lowest_threshold(sim: np.ndarray, label: np.ndarray, target: float) -> float | None:
    """The lowest similarity t such that pairs with s >= t have precision >= ``target`` (the deepest such
    point of the ranking, highest similarity first); None when even the top pair misses it."""
    if sim.size == 0:
        return None
    order = np.argsort(-sim, kind="stable")
    s, y = sim[order], label[order].astype(np.int64)
    tp = np.cumsum(y)
    precision = tp / np.arange(1, s.size + 1)
    last = np.flatnonzero(precision >= target)
    if last.size == 0:
        return None
    k = int(last[-1])
    while k + 1 < s.size and s[k + 1] == s[k]:  # a tie with the next pair: that pair would match too
        k += 1
    return float(s[k]) if precision[k] >= target else None


def calibrated_thresholds(con, run_id: int, phash_accept: int, phash_radius: int,
                          target: float) -> tuple[float, float, float]:
    """``(clip_verify, clip_strict, clip_veto)`` from evaluate run ``run_id``'s val pairs: the lowest similarities that
    keep pair precision >= ``target`` for pairs in the pHash band (``phash_accept < d <= phash_radius``) and
    for all pairs (embedding only). A side where no threshold holds the target is off (1.0 + the largest
    similarity seen); a band with no pairs takes the embedding-only threshold. ``clip_veto``: 0.05 below the
    lowest similarity of a val positive that pHash accepts (``d <= phash_accept``), so no val positive is
    vetoed; never above ``clip_verify``."""
    rows = con.execute(
        "SELECT s.phash_distance, s.clip_similarity, p.label FROM scores s JOIN pairs p "
        "ON p.dataset = s.dataset AND p.pair_id = s.pair_id WHERE s.run_id = ? AND p.split = 'val' "
        "AND s.clip_similarity IS NOT NULL", [run_id]).fetchnumpy()
    d = np.asarray(rows["phash_distance"], dtype=np.float64)
    sim = np.asarray(rows["clip_similarity"], dtype=np.float64)
    label = np.asarray(rows["label"], dtype=bool)
    off = 1.0 + (float(sim.max()) if sim.size else 0.0)
    strict = _lowest_threshold(sim, label, target)
    strict = off if strict is None else strict
    band = (d > phash_accept) & (d <= phash_radius)
    verify = _lowest_threshold(sim[band], label[band], target) if band.any() else strict
    verify = off if verify is None else verify
    verify = min(verify, strict)
    accepted = label & (d <= phash_accept)
    veto = float(sim[accepted].min()) - 0.05 if accepted.any() else -1.0
    return verify, strict, min(veto, verify)


def embedded_shas(con, shas: Sequence[str], model_id: str) -> set[str]:
    """The contents among ``shas`` that have an embedding of ``model_id`` (no vector is read)."""
    _maya_q = {"sha256": np.array(list(shas), dtype=object)}  # noqa: F841
    if not shas:
        return set()
    return {s for (s,) in con.execute(
        "SELECT e.sha256 FROM embeddings e JOIN _maya_q q USING (sha256) WHERE e.model = ?", [model_id]).fetchall()}


def image_sizes(con, shas: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(width, height)`` int64 (n,) of ``shas``, in order, pixels after EXIF orientation (0 if unknown)."""
    _maya_q = {"sha256": np.array(list(shas), dtype=object), "pos": np.arange(len(shas), dtype=np.int64)}  # noqa: F841
    size = con.execute("SELECT q.pos, i.width, i.height FROM _maya_q q LEFT JOIN images i USING (sha256)").fetchnumpy()
    width = np.zeros(len(shas), dtype=np.int64)
    height = np.zeros(len(shas), dtype=np.int64)
    if len(shas):
        width[size["pos"]] = np.nan_to_num(np.asarray(size["width"], dtype=np.float64)).astype(np.int64)
        height[size["pos"]] = np.nan_to_num(np.asarray(size["height"], dtype=np.float64)).astype(np.int64)
    return width, height


def embedding_matrix(con, shas: Sequence[str], model_id: str, *, chunk: int | None = None) -> np.ndarray:
    """float32 (n, dim): the embedding of ``model_id`` of each of ``shas`` (zeros where missing), straight into one
    matrix, ``chunk`` rows a query (default: :func:`maya.store.index.vector_chunk`).

    Up to ``chunk`` shas: one join. More: the model's rows are read once in rowid order
    (:func:`maya.store.index.vector_rows`, DuckDB's cache dropped after each chunk) and the asked ones kept, as
    each join scans the model's rows (a join per chunk of 1,024 took 22.7 s for 100k rows of 512 floats, the one
    pass 2.3 s)."""
    from maya.store.index import vector_chunk, vector_rows

    shas = list(shas)
    rows, dim, top = con.execute("SELECT count(*), max(dim), coalesce(max(rowid), -1) FROM embeddings WHERE model = ?",
                                 [model_id]).fetchone()
    vectors = np.zeros((len(shas), int(dim or 0)), dtype=np.float32)
    if not shas or not rows:
        return vectors
    chunk = max(1, int(chunk or vector_chunk(dim)))
    if len(shas) > chunk:
        pos = {s: k for k, s in enumerate(shas)}
        for _, got_shas, got_vectors in vector_rows(con, model_id, -1, top, chunk=chunk):
            for s, v in zip(got_shas, got_vectors):  # row by row: no second copy of the chunk
                k = pos.get(s)
                if k is not None:
                    vectors[k] = v
        return vectors
    _maya_q = {"sha256": np.array(shas, dtype=object), "pos": np.arange(len(shas), dtype=np.int64)}  # noqa: F841
    got = con.execute("SELECT q.pos, e.vector FROM embeddings e JOIN _maya_q q USING (sha256) "
                      "WHERE e.model = ?", [model_id]).fetchnumpy()
    for k, v in zip(got["pos"], got["vector"]):
        vectors[k] = v
    del got
    store.drop_cache(con)
    return vectors


def start_dedup_run(con, roots: Sequence[str], options, model_id: str | None, parameters: dict,
                    flow_run_id: str | None = None) -> int:
    """Add a ``runs`` row (flow 'dedup', status 'running'); earlier dedup runs still 'running' are marked
    'interrupted' by :func:`maya.store.start_run`. ``options``: a ``maya.dedup.options.DedupOptions``."""
    params = {"roots": [path_text(r) for r in roots], **options.as_dict(), **parameters}
    return store.start_run(con, flow="dedup", dataset=None, model=model_id, parameters=params,
                           flow_run_id=flow_run_id)


def save_dedup_results(con, run_id: int, roots: Sequence[str], options, shas: Sequence[str], pairs, groups: Sequence,
                       errors: Sequence, counts: dict) -> None:
    """Write the run's pairs, groups, members and errors (sql/dedup.sql) in one transaction.

    ``shas``: the sha256 of the matched images (``maya.dedup.candidates.Images.sha256``); ``pairs``: ``Pairs``
    (indices into ``shas``);
    ``groups``: ``maya.dedup.groups.DuplicateGroup``; ``errors``: ``maya.io.ingest.FileProblem``.
    """
    pt = path_text
    with store.transaction(con):
        # pairs by content, the smaller sha256 first; indices are turned into sha256 inside DuckDB, so
        # no Python string is made per pair
        p = len(pairs)
        _maya_shas = {"k": np.arange(len(shas), dtype=np.int64),  # noqa: F841
                      "sha256": np.array(shas, dtype=object)}
        _maya_pairs = {"a": pairs.a.astype(np.int64), "b": pairs.b.astype(np.int64),  # noqa: F841
                       "d": pairs.phash_distance.astype(np.int64), "s": pairs.clip_similarity.astype(np.float64),
                       "rule": pairs.rule, "v": pairs.variant_names()}
        if p:
            con.execute(
                "INSERT INTO dedup_pairs (run_id, a, b, phash_distance, clip_similarity, rule, phash_variant) "
                "SELECT ?, least(x.sha256, y.sha256), greatest(x.sha256, y.sha256), p.d, "
                "CASE WHEN isnan(p.s) THEN NULL ELSE p.s END, p.rule, p.v "
                "FROM _maya_pairs p JOIN _maya_shas x ON x.k = p.a JOIN _maya_shas y ON y.k = p.b",
                [run_id])
        gid = np.arange(1, len(groups) + 1, dtype=np.int64)
        store.insert_rows(con, "dedup_groups", {
            "run_id": np.full(len(groups), run_id, dtype=np.int64), "group_id": gid,
            "keep_path": [pt(g.keep.path) for g in groups],
            "files": np.array([len(g.members) for g in groups], dtype=np.int64),
            "images": np.array([len({m.sha256 for m in g.members}) for g in groups], dtype=np.int64),
            "reclaimable_bytes": np.array([sum(m.size_bytes for m in g.members[1:]) for g in groups], dtype=np.int64),
            "chained": np.array([g.chained for g in groups], dtype=bool),
            "split": np.array([g.split for g in groups], dtype=bool),
            "weakest_a": [pt(g.weakest_link["a"]) if g.weakest_link else None for g in groups],
            "weakest_b": [pt(g.weakest_link["b"]) if g.weakest_link else None for g in groups],
            "weakest_phash_distance": np.array([g.weakest_link["phash_distance"] if g.weakest_link else np.nan
                                                for g in groups], dtype=np.float64),
            "weakest_clip_similarity": np.array([(g.weakest_link or {}).get("clip_similarity") or np.nan
                                                 for g in groups], dtype=np.float64),
        })
        rows = [(k + 1, i == 0, m) for k, g in enumerate(groups) for i, m in enumerate(g.members)]
        store.insert_rows(con, "dedup_members", {
            "run_id": np.full(len(rows), run_id, dtype=np.int64),
            "group_id": np.array([r[0] for r in rows], dtype=np.int64),
            "path": [pt(r[2].path) for r in rows], "sha256": [r[2].sha256 for r in rows],
            "keep": np.array([r[1] for r in rows], dtype=bool),
            "phash_distance": np.array([r[2].phash_distance for r in rows], dtype=np.int64),
            "clip_similarity": np.array([np.nan if r[2].clip_similarity is None else r[2].clip_similarity
                                         for r in rows], dtype=np.float64),
            "exact": np.array([r[2].exact for r in rows], dtype=bool),
            "clause": [r[2].clause for r in rows],
            "views": [r[2].views for r in rows],
        })
        store.insert_rows(con, "dedup_errors", {
            "run_id": np.full(len(errors), run_id, dtype=np.int64),
            "path": [pt(e.path) for e in errors], "reason": [e.reason for e in errors],
            "error": [e.error for e in errors],
        })
        con.execute(
            "INSERT INTO dedup_runs (run_id, roots, mode, files_found, files_read, files_reused, files_failed, "
            "images, pairs, groups, duplicate_files, reclaimable_bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, json.dumps([pt(r) for r in roots]), options.mode, counts.get("files_found", 0),
             counts.get("files_read", 0), counts.get("files_reused", 0), len(errors), len(shas), p,
             len(groups), sum(len(g.members) - 1 for g in groups),
             sum(m.size_bytes for g in groups for m in g.members[1:])],
        )
