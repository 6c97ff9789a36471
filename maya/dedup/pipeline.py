"""The dedup pipeline, once: the library function behind ``maya dedup``, the Prefect flow and Python.

    walk + identify (sha256, incremental) -> decode once: pHash + embedding of what is missing
    -> candidates (pHash radius search, embedding top-k) -> verify (the decision rule) -> groups -> store

:func:`run_dedup` runs the steps and records the run; :func:`find_duplicates` is the one-call API (the
report as plain data). Where the batches run is a :class:`Runner`: threads in this process by default;
``flows/dedup.py`` passes its Prefect tasks (which may run on Dask). Whatever the runner, only this
process writes DuckDB, each batch in one transaction, so a run killed at any point leaves a consistent
store and the next run computes only what is missing. Features are cached by content (the same tables as
the evaluate study), so a second run over the same folders reads no file again and computes nothing new;
without ``db_path`` the cache is an in-memory database.

Byte-identical files are one image (one sha256) and always one group: ``exact`` duplicates, found without
decoding anything twice. The steps: ``maya.dedup.files``, ``maya.features.compute_missing``,
``maya.dedup.candidates``, ``maya.dedup.groups``, ``maya.dedup.outputs``; SQL in ``maya.store.dedup``.
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Sequence

from maya.dedup import candidates, groups as grouping_step
from maya.dedup.files import Identified, file_errors, identify_files
from maya.dedup.groups import DuplicateGroup
from maya.dedup.options import (CLIP_NEIGHBOURS, PHASH_ACCEPT, PHASH_BATCH, PHASH_RADIUS, DedupOptions,
                                DedupUsageError, RuleSource, check_roots, describe_rule,
                                resolve_thresholds)
from maya.dedup.outputs import build_report
from maya.io import ingest
from maya.progress import Progress

@dataclass(frozen=True)
class Runner:
    """Where the pipeline's work runs. ``sha256_files(paths)`` and ``image_features(items, want_hash,
    model, max_pixels, retry_delays)`` submit one batch and return a future (``.result()``) of
    ``maya.io.ingest.sha256_files`` / ``maya.features.compute_batch``; None: threads in this process.
    The three steps are called with the step's arguments and return its result (a Prefect task works as
    is). ``in_flight``: batches submitted ahead of the one being written (memory holds that many)."""

    sha256_files: Callable[[list[str]], Future] | None = None
    image_features: Callable[..., Future] | None = None
    candidate_pairs: Callable = candidates.candidate_pairs
    verify_pairs: Callable = candidates.verify_pairs
    duplicate_groups: Callable = grouping_step.duplicate_groups
    in_flight: int = 2


@dataclass
class DedupRun:
    """Everything a dedup run produced: the report (JSON structure), the groups with file details,
    the problems, counts, and the run id in the database."""

    report: dict
    groups: list[DuplicateGroup]
    errors: list[ingest.FileProblem]
    counts: dict
    skipped: dict
    run_id: int
    model_id: str | None
    options: DedupOptions
    rule_source: RuleSource | None = None

    @property
    def rule_text(self) -> str:
        return describe_rule(self.options)

    @property
    def calibration_run(self) -> int | None:
        return self.rule_source.evaluate_run if self.rule_source else None


def summarise_counts(identified: Identified, outcome, errors, groups) -> dict:
    """All the counts of a run in one flat dict (what the CLI prints and the tests check)."""
    from maya.features import DEDUP_COUNTS

    return {
        **identified.counts, **outcome.counts_of(DEDUP_COUNTS),
        "files_failed": len(errors), "groups": len(groups),
        "duplicate_files": sum(len(g.members) - 1 for g in groups),
        "reclaimable_bytes": sum(m.size_bytes for g in groups for m in g.members[1:]),
    }


def run_dedup(
    roots,
    options: DedupOptions | None = None,
    *,
    db_path: str | os.PathLike | None = None,
    model: str | None = None,
    device: str | None = None,
    precision: str = "auto",
    batch_size: int | None = None,
    max_pixels: int | None = None,
    follow_symlinks: bool = False,
    include_hidden: bool = False,
    exclude: Sequence[str] = (),
    progress: bool = False,
    runner: Runner | None = None,
    flow_run_id: str | None = None,
    parameters: dict | None = None,
    calibration: str | None = None,
    selection=None,
    sensitivity=None,
) -> DedupRun:
    """Run every step and record the run in the store (``runs`` and the ``dedup_*`` tables).

    ``db_path``: the DuckDB file that caches file identities and features and records the run
    (None: an in-memory database, nothing kept). ``exclude``: folders not to enter (see
    ``maya.io.ingest``). ``runner``: where batches run (:class:`Runner`; default threads here).
    ``flow_run_id``, ``parameters``: recorded with the run (``runs.flow_run_id``, ``runs.parameters``).
    ``calibration``: an evaluate run id or dataset whose val pairs set the embedding thresholds left None
    (``--calibration``; default: the model's built-in defaults, see ``maya.dedup.options.resolve_thresholds``).
    ``selection``: the user's file filters (:class:`maya.io.selection.FileSelection`); ``sensitivity``: a
    :class:`maya.dedup.sensitivity.Sensitivity` applied to the resolved thresholds.
    Other arguments as in :func:`find_duplicates`.
    """
    import duckdb

    from maya import features, store, view_features
    from maya.malloc import limit_arenas
    from maya.store import dedup as dedup_store

    limit_arenas()  # before any thread of the run (sha256 readers, decoders, the model's) makes an arena
    runner = runner or Runner()
    options = (options or DedupOptions()).check()
    roots = check_roots(roots)
    if max_pixels is not None and max_pixels < 1:
        raise DedupUsageError(f"max-pixels must be >= 1, got {max_pixels}")
    spec, model_id, batch = None, None, batch_size or PHASH_BATCH
    if options.uses_embeddings:
        from maya.settings import DEFAULT_MODEL

        spec = features.ModelSpec(model or DEFAULT_MODEL, device, precision or "auto", batch_size)
        embedder = features.get_embedder(spec)  # fail fast, before reading any file
        model_id, batch = embedder.model_id, batch_size or embedder.batch_size
    if db_path is not None:
        db_path = os.path.expanduser(db_path)  # "~/maya-data/maya.duckdb" as a shell would
    if db_path is None:
        con = duckdb.connect(":memory:")
        store.apply_schema(con)
    else:
        con = store.connect(db_path)
    try:
        options, source = resolve_thresholds(con, options, spec.name if spec else None, model_id, calibration)
        if sensitivity is not None:
            options = sensitivity.apply(options)
        run_id = dedup_store.start_dedup_run(
            con, roots, options, model_id,
            {"model": model if spec else None, "batch_size": batch, "follow_symlinks": follow_symlinks,
             "include_hidden": include_hidden, "calibration": calibration, "rule_source": source.text,
             **(parameters or {})},
            flow_run_id=flow_run_id)
        try:
            identified = identify_files(con, roots, follow_symlinks=follow_symlinks, include_hidden=include_hidden,
                                        exclude=exclude, submit=runner.sha256_files, in_flight=runner.in_flight,
                                        progress=progress, selection=selection)
            path_of: dict[str, str] = {}
            for f in identified.files:
                path_of.setdefault(f.sha256, f.path)
            outcome = features.compute_missing(
                con, list(path_of), paths=path_of, model=spec, model_id=model_id, batch_size=batch,
                max_pixels=max_pixels, submit=runner.image_features, in_flight=runner.in_flight,
                policy=features.DEDUP_POLICY, progress=lambda total: Progress(total, "features", progress),
                views=options.views)
            ok = [s for s in path_of if s not in outcome.problems]
            view_counts = None
            if options.views:  # inner views of screenshots, memes, borders (issue 15): cached by content
                view_counts = view_features.compute_views(con, ok, paths=path_of, model=spec, model_id=model_id,
                                                          batch_size=batch, max_pixels=max_pixels,
                                                          boxes=outcome.view_boxes)
            for name in options.extra_views:  # fixed extra views (--extra-views), default none
                extra = view_features.compute_extra_views(con, ok, name, paths=path_of, model=spec, model_id=model_id,
                                                          batch_size=batch, max_pixels=max_pixels)
                view_counts = extra if view_counts is None else {k: view_counts[k] + extra[k] for k in extra}
            if view_counts is not None:
                view_features.record_cost(con, run_id, view_counts)
            embedder = None  # every embedding is stored: a cheap-to-load model is not held through the matching
            features.release_embedder(spec)
            store.checkpoint(con)  # what the features and views wrote goes to the file now, not mid-matching
            store.drop_cache(con)  # nor are DuckDB's pages of it held
            images = candidates.load_images(con, ok, model_id if options.uses_embeddings else None,
                                            views=options.views, extra_views=options.extra_views,
                                            grid=options.uses_grid)
            if db_path is not None:  # the turned-pHash pairs of contents searched before are kept (maya.index.turned)
                from maya.index.collection import index_dir

                images.pair_cache = str(index_dir(db_path))
            # three steps that take minutes on large collections: say where the run is
            steps = Progress(3, "matching (candidates, verify, groups)", progress, unit="step")
            a, b = runner.candidate_pairs(images, options)
            steps.update(1)
            pairs = runner.verify_pairs(images, a, b, options)
            steps.update(1)
            groups = runner.duplicate_groups(images, identified.files, pairs, options, roots)
            steps.update(1)
            steps.close()
            errors = file_errors(identified, outcome)
            counts = summarise_counts(identified, outcome, errors, groups)
            shas = images.sha256
            images = a = b = None  # the matching arrays are not held while the results and the index files are written
            dedup_store.save_dedup_results(con, run_id, roots, options, shas, pairs, groups, errors, counts)
            if db_path is not None:  # the collection index behind `maya search` (derived files, maya.index)
                from maya.hashing import DEFAULT as hasher
                from maya.index.collection import update_after_dedup

                update_after_dedup(con, db_path, hasher.name, model_id)
            store.finish_run(con, run_id, status="completed", counts={**counts, "images_failed": len(errors)})
        except BaseException:
            store.finish_run(con, run_id, status="failed")
            raise
        report = build_report(groups, errors)
        report["rule"] = {"text": describe_rule(options), "source": source.text,
                          "calibration_run": source.evaluate_run, **options.as_dict()}
        return DedupRun(report, groups, errors, counts, identified.skipped, run_id, model_id, options, source)
    finally:
        con.close()


def find_duplicates(
    paths,
    mode: str = "hybrid",
    *,
    model: str | None = None,
    device: str | None = None,
    precision: str = "auto",
    batch_size: int | None = None,
    phash_accept: int = PHASH_ACCEPT,
    phash_radius: int = PHASH_RADIUS,
    clip_verify: float | None = None,
    clip_strict: float | None = None,
    clip_k: int = CLIP_NEIGHBOURS,
    split_chains: bool = False,
    follow_symlinks: bool = False,
    include_hidden: bool = False,
    max_pixels: int | None = None,
    db_path: str | os.PathLike | None = None,
    progress: bool = False,
    calibration: str | None = None,
    grouping: str = "star",
    clip_veto: float | None = None,
    keep: str = "source",
    prefer: Sequence[str] = (),
) -> dict:
    """Groups of near-duplicate images under ``paths``, as the JSON structure of ``maya dedup --json``.

    Args:
        paths: a folder or file, or a list of them (searched recursively).
        mode: ``"hybrid"`` (default), ``"clip"`` or ``"phash"`` (no model is loaded); see ``maya.dedup.options``.
        model: embedding model for hybrid/clip: hub id, local CLIP folder or ``"efficientnet-lite0"``
            (default ``maya.settings.DEFAULT_MODEL``). device, precision, batch_size: where and how it runs.
        phash_accept, phash_radius: bits. clip_verify, clip_strict: cosine similarities. clip_k: embedding
            neighbours per image. split_chains: cut chained groups at their weakest links.
        follow_symlinks, include_hidden: walk options (both off by default).
        max_pixels: largest declared width x height decoded (default ``maya.io.images.DEFAULT_MAX_PIXELS``).
        db_path: a DuckDB file to cache identities and features in (a second call reads nothing again);
            None keeps everything in memory.
        progress: show progress on stderr.
        grouping: ``"star"`` (every member a direct match of the kept file) or ``"components"``.
        clip_veto: a pHash accept with a similarity below this is no match (None: the model's default).
        keep, prefer: which file of a group is kept (``maya.dedup.keep``: ``"source"`` by default).
        calibration: an evaluate run id or dataset in ``db_path`` whose val pairs set the similarity
            thresholds left None (default: the model's built-in defaults).

    Returns:
        ``{"groups": [...], "errors": [...]}`` (``maya.dedup.outputs``). Files that cannot be used are listed
        under ``errors``; they never raise. Raises :class:`DedupUsageError` for a missing folder or a bad
        setting, ``maya.embedding.models.ModelLoadError`` when the model cannot be loaded.
    """
    options = DedupOptions(mode, phash_accept, phash_radius, clip_verify, clip_strict, clip_k, split_chains,
                           grouping, clip_veto, keep, tuple(prefer))
    return run_dedup(paths, options, db_path=db_path, model=model, device=device, precision=precision,
                     batch_size=batch_size, max_pixels=max_pixels, follow_symlinks=follow_symlinks,
                     include_hidden=include_hidden, progress=progress, calibration=calibration).report
