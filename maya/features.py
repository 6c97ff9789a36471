"""Features per image, decoded once: pHash bits and embeddings, computed in batches; the one loop that
computes what a set of contents is missing (:func:`compute_missing`, for dedup and the study).

A batch is prepared once (read, decode at reduced scale, EXIF-orient, RGB) and both stages use it:
pHash takes the 32x32 grey thumbnails, the embedder takes its model input tensor. Failures become
records with a reason; they never stop the batch.

:func:`compute_missing` asks the store which contents lack a hash (or an embedding of the model), sends
them in batches to a runner (``submit``: threads by default, a Prefect task, a Dask worker), and writes
the finished batches' results in one transaction per :data:`WRITE_ROWS` contents in the calling process (the
one writer), so an interrupted run keeps what it wrote. What its callers differ in is a :class:`FeaturePolicy`,
stated, not coded apart.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from maya.io import ingest

#: Decoded images keep at least this shorter side (covers 224-px model inputs; pHash needs 32).
DECODE_MIN_SIDE = 256


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to build the same embedder as the flow (picklable, for Dask)."""

    name: str
    device: str | None = None
    precision: str = "auto"
    batch_size: int | None = None


@functools.lru_cache(maxsize=4)
def get_embedder(spec: ModelSpec):
    """One embedder per process and spec (model weights are loaded once)."""
    from maya.embedding.models import load_embedder

    return load_embedder(spec.name, device=spec.device, precision=spec.precision, batch_size=spec.batch_size)


def release_embedder(spec: ModelSpec | None) -> bool:
    """Let this process free the embedder of ``spec`` when loading it again is cheap (ONNX Runtime: ~0.1 s).

    Dedup calls it once its features are stored: the session and its activation memory (~80 MiB for
    efficientnet-lite0) are then not held while the candidates and groups are worked out. A torch model (seconds to
    load, maybe on a GPU) stays cached. Returns whether the cache was cleared."""
    if spec is None or getattr(get_embedder(spec), "runtime", "torch") != "onnxruntime":
        return False
    get_embedder.cache_clear()
    return True


@dataclass
class ImageRecord:
    sha256: str
    size_bytes: int | None
    width: int | None
    height: int | None
    format: str | None
    status: str
    error: str | None = None


@dataclass
class PreparedBatch:
    """Images of one batch, decoded once. Arrays are aligned with ``ok``."""

    records: list[ImageRecord] = field(default_factory=list)  # one per requested image
    ok: list[str] = field(default_factory=list)  # sha256 of decoded images
    gray32: np.ndarray | None = None  # (n_ok, 32, 32) float64, for pHash
    model_input: object | None = None  # (n_ok, 3, S, S) for the embedder: its from_uint8() output (= preprocess())
    pixels: list = field(default_factory=list)  # pixel digests or None (maya.hashing.structure.wants_digest), with gray32
    grid: np.ndarray | None = None  # (n_ok, 96, 96) uint8 grey thumbnails (maya.hashing.grid), with gray32
    view_boxes: list = field(default_factory=list)  # with ``views``: maya.views.inner_box of each ok image


def _load_one(item: tuple[str, str], max_pixels: int | None, min_side: int):
    from maya.io import images as imageio

    sha, path = item
    kw = {"min_side": min_side}
    if max_pixels:
        kw["max_pixels"] = max_pixels
    try:
        loaded = imageio.load_image(path, **kw)
    except imageio.ImageLoadError as e:
        return None, ImageRecord(sha, None, None, None, None, "error", str(e))
    if loaded.sha256 != sha:
        msg = f"changed: {path}: the file's content changed since it was registered"
        return None, ImageRecord(sha, loaded.size_bytes, None, None, None, "error", msg)
    rec = ImageRecord(sha, loaded.size_bytes, loaded.width, loaded.height, loaded.format, "ok")
    return loaded, rec


def default_workers() -> int:
    """Decode / edit threads: one per core, at most 8 (Pillow, numpy and zlib release the GIL)."""
    return max(1, min(8, os.cpu_count() or 1))


def prepare_batch(
    items: Sequence[tuple[str, str]],
    *,
    want_hash: bool = True,
    model: ModelSpec | None = None,
    max_pixels: int | None = None,
    workers: int | None = None,
    views: bool = False,
) -> PreparedBatch:
    """Decode ``items`` ((sha256, path) pairs) once, in a thread pool; build pHash and model inputs (and,
    with ``views``, find each image's inner view box, so that ``maya.view_features`` need not decode it
    again)."""
    from maya.malloc import limit_arenas

    limit_arenas()  # once per process (a Dask or Prefect worker too), before the decode threads start
    embedder = get_embedder(model) if model is not None else None
    min_side = max(DECODE_MIN_SIDE, getattr(embedder, "input_size", 0) or 0)
    workers = workers or default_workers()
    preprocessing = embedder.preprocessing if embedder is not None else None
    with ThreadPoolExecutor(max_workers=workers) as pool:  # each image decoded and made into every input at once
        results = list(pool.map(lambda it: _prepare_one(it, max_pixels, min_side, want_hash, preprocessing, views),
                                items))
    out = PreparedBatch(records=[r for _, r, _ in results])
    done = [(sha, parts) for sha, _, parts in results if sha is not None]
    out.ok = [sha for sha, _ in done]
    if done and want_hash:
        out.gray32 = np.stack([parts["gray32"] for _, parts in done])
        out.pixels = [parts["pixels"] for _, parts in done]
        out.grid = np.stack([parts["grid"] for _, parts in done])  # the cell-agreement thumbnails
    if done and embedder is not None:
        out.model_input = embedder.from_uint8(preprocessing.stack_uint8([parts["pixels_in"] for _, parts in done]))
    if done and views:
        out.view_boxes = [parts["box"] for _, parts in done]
    return out


def _prepare_one(item, max_pixels, min_side, want_hash: bool, preprocessing, views: bool):
    """One image of a batch: ``(sha256 or None, record, inputs)``, the inputs made from the one decode right away
    (in the decode thread: Pillow's resizes release the GIL, and the decoded pixels are not kept for a later
    pass over the batch): the pHash grey image, pixel digest and grid thumbnail (``want_hash``), the model's
    resized pixels (``preprocessing``: :meth:`ImagePreprocessing.to_uint8`) and the inner view box (``views``)."""
    loaded, rec = _load_one(item, max_pixels, min_side)
    if loaded is None:
        return None, rec, None
    image, parts = loaded.image, {}
    if want_hash:
        from maya.hashing import grid, phash, structure

        grey = image.convert("L")  # once, for both: what gray32 and the thumbnails convert to themselves
        parts["gray32"] = phash.gray32(grey)
        parts["grid"] = grid.thumbnails([grey])[0]
        parts["pixels"] = structure.pixel_digest(image) if structure.wants_digest(parts["gray32"]) else None
    if preprocessing is not None:
        parts["pixels_in"] = preprocessing.to_uint8(image)
    if views:
        from maya import views as inner

        parts["box"] = inner.inner_box(image)
    return loaded.sha256, rec, parts


def hash_batch(batch: PreparedBatch) -> tuple[list[str], np.ndarray]:
    """pHash bits (uint64) of the decoded images of ``batch``."""
    from maya.hashing import phash

    if batch.gray32 is None:
        return [], np.zeros(0, dtype=np.uint64)
    return list(batch.ok), phash.phash_bits_from_gray(batch.gray32)


def embed_batch(batch: PreparedBatch, model: ModelSpec) -> tuple[list[str], np.ndarray]:
    """L2-normalised embeddings (float32, (n, dim)) of the decoded images of ``batch``."""
    if batch.model_input is None:
        return [], np.zeros((0, 0), dtype=np.float32)
    embedder = get_embedder(model)
    return list(batch.ok), embedder.embed_tensor(batch.model_input)


@dataclass
class FeatureBatch:
    """What one feature batch produced: small and picklable (no pixels, no tensors), so a Dask worker can
    return it to the flow's process. ``hash_bits`` uint64 (n,); ``vectors`` float32 (m, dim), unit rows."""

    records: list[ImageRecord]  # one per requested image
    hash_shas: list[str]
    hash_bits: np.ndarray
    embed_shas: list[str]
    vectors: np.ndarray | None
    worker_pid: int = field(default_factory=os.getpid)  # which process computed it
    hash_std: np.ndarray | None = None  # float64 (n,): gray_std per hash (maya.hashing.structure)
    hash_pixels: list[str] = field(default_factory=list)  # (n,) pixel digests per hash
    variant_bits: np.ndarray | None = None  # uint64 (n, 8): dihedral pHashes, aligned with hash_shas
    view_boxes: dict = field(default_factory=dict)  # with ``views``: sha256 -> inner view box or None
    grid_thumbs: np.ndarray | None = None  # uint8 (n, 96, 96): grey thumbnails (maya.hashing.grid), aligned with hash_shas


def compute_batch(items: Sequence[tuple[str, str]], want_hash: bool, model: ModelSpec | None,
                  max_pixels: int | None, retry_delays: Sequence[float] = (), views: bool = False) -> FeatureBatch:
    """Decode ``items`` ((sha256, path) pairs) once; pHash them (if ``want_hash``) and embed them with
    ``model`` (if not None). Files that cannot be used are records with a reason, never exceptions.

    Files that failed with a transient I/O error (``maya.io.ingest.is_transient``) are tried again after
    each of ``retry_delays`` seconds (none by default). ``views``: also find the decoded images' inner
    view boxes (``FeatureBatch.view_boxes``)."""
    result = _compute_once(items, want_hash, model, max_pixels, views)
    for delay in retry_delays:
        retry = [k for k, r in enumerate(result.records)
                 if r.status == "error" and ingest.is_transient(*_content_error(r.error, items[k][1]))]
        if not retry:
            break
        time.sleep(delay)
        again = _compute_once([items[k] for k in retry], want_hash, model, max_pixels, views)
        result.view_boxes.update(again.view_boxes)
        for k, rec in zip(retry, again.records):
            result.records[k] = rec
        result.hash_shas += again.hash_shas
        result.hash_bits = np.concatenate([result.hash_bits, again.hash_bits])
        result.hash_std = np.concatenate([_std_of(result), _std_of(again)])
        result.hash_pixels += again.hash_pixels
        result.variant_bits = _concat_variants(result.variant_bits, again.variant_bits)
        result.grid_thumbs = _concat_variants(result.grid_thumbs, again.grid_thumbs)
        result.embed_shas += again.embed_shas
        if again.vectors is not None:
            result.vectors = again.vectors if result.vectors is None else np.concatenate([result.vectors, again.vectors])
    return result


def _std_of(batch: FeatureBatch) -> np.ndarray:
    return np.zeros(0) if batch.hash_std is None else batch.hash_std


def _compute_once(items, want_hash, model, max_pixels, views=False) -> FeatureBatch:
    from maya.hashing import structure

    prepared = prepare_batch(items, want_hash=want_hash, model=model, max_pixels=max_pixels, views=views)
    h_shas, bits = hash_batch(prepared) if want_hash else ([], np.zeros(0, dtype=np.uint64))
    std = structure.gray_std(prepared.gray32) if want_hash and prepared.gray32 is not None else np.zeros(0)
    e_shas, vecs = embed_batch(prepared, model) if model is not None else ([], None)
    variants = None
    if want_hash and prepared.gray32 is not None:  # the 8 flip/turn hashes, from the same grey arrays
        from maya.hashing import dihedral
        variants = dihedral.dihedral_bits_from_gray(prepared.gray32)
    return FeatureBatch(
        records=list(prepared.records), hash_shas=list(h_shas), hash_bits=np.asarray(bits, dtype=np.uint64),
        embed_shas=list(e_shas),
        vectors=None if vecs is None or len(e_shas) == 0 else np.ascontiguousarray(vecs, dtype=np.float32),
        hash_std=std, hash_pixels=list(prepared.pixels) if want_hash else [],
        variant_bits=variants, view_boxes=dict(zip(prepared.ok, prepared.view_boxes)),
        grid_thumbs=prepared.grid if want_hash else None,
    )


def _concat_variants(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None or b is None:
        return b if a is None else a
    return np.concatenate([a, b])


# ---------------------------------------------------------------------------------------------- missing features

#: Error reasons that belong to a path at one moment, not to the content (see ``content_errors``).
FILE_LEVEL_REASONS = frozenset({"missing", "unreadable", "is_directory", "changed"})
#: Error reasons that depend only on a file's bytes: trying again cannot help.
PERMANENT_IMAGE_ERRORS = frozenset({"not_an_image", "truncated", "corrupt", "empty"})


@dataclass(frozen=True)
class FeaturePolicy:
    """How :func:`compute_missing` treats failures, before and now.

    ``skip_stored``: reasons of stored failures (``images.status = 'error'``) that are not tried again
    (the content is reported with its stored error); None: every reason. ``retry_raised_limit``: a stored
    ``too_large`` failure is tried again when ``max_pixels`` is now above the limit it failed under.
    ``content_errors``: errors are facts about the content (what dedup reports per file): the path is cut
    out of the message, and path-level reasons (:data:`FILE_LEVEL_REASONS`) are reported but not stored;
    False: every record is stored as the decoder wrote it. ``transient_retry_delays``: seconds after which
    files that failed with a transient I/O error are tried again inside their batch.
    """

    skip_stored: frozenset[str] | None = None
    retry_raised_limit: bool = True
    content_errors: bool = True
    transient_retry_delays: tuple[float, ...] = ingest.TRANSIENT_RETRY_DELAYS


#: dedup: known-bad content is not decoded again (except ``too_large`` under a raised limit); errors are
#: stored per content, without paths; transient read errors are retried in the batch.
DEDUP_POLICY = FeaturePolicy()
#: the study: only failures that depend on the bytes are not tried again; records are stored as they are
#: (path-level reasons too); retries of transient errors are the feature task's (Prefect retries).
STUDY_POLICY = FeaturePolicy(skip_stored=PERMANENT_IMAGE_ERRORS, retry_raised_limit=False, content_errors=False,
                             transient_retry_delays=())


#: The feature counts each caller reports (``FeatureOutcome.counts_of``), in its order.
DEDUP_COUNTS = ("images", "hashes_computed", "embeddings_computed", "decoded", "hashes_reused", "embeddings_reused")
STUDY_COUNTS = ("hashes_computed", "embeddings_computed", "images_failed", "hashes_reused", "embeddings_reused",
                "batches", "worker_pids")


@dataclass
class FeatureOutcome:
    """Per content: the problem, if any (``reason``, ``"reason: detail"``); and the counts of the run:
    ``images`` (distinct contents asked about), ``hashes_computed`` / ``embeddings_computed``,
    ``decoded`` (contents sent to a batch), ``hashes_reused`` / ``embeddings_reused`` (stored before, among
    the contents not skipped), ``images_failed`` (stored failures among the contents after the run, plus
    contents with no path to read), ``batches``, ``worker_pids`` (sorted: processes that computed)."""

    problems: dict[str, tuple[str, str]] = field(default_factory=dict)  # sha256 -> (reason, error)
    counts: dict = field(default_factory=dict)
    view_boxes: dict = field(default_factory=dict)  # with ``views``: sha256 -> inner view box or None, decoded now

    def counts_of(self, keys: Sequence[str]) -> dict:
        """The counts named by ``keys``, in that order (each caller reports its own set)."""
        return {k: self.counts[k] for k in keys}


#: Contents written per transaction by :func:`compute_missing`: each INSERT costs ~3 ms whatever its size, and a
#: model batch is small (8 images on a CPU), so batches are gathered until they hold this many (375 -> 24
#: transactions for 3,000 photos). DuckDB's transient memory for the embedding rows grows with it: a 3,000-photo
#: dedup peaks at 268-270 MiB at 128 and 278-281 at 256, in the same time. ``MAYA_WRITE_ROWS`` sets another
#: number (1: every batch in its own transaction, as the kill-and-resume tests want).
WRITE_ROWS = 128
WRITE_ROWS_ENV = "MAYA_WRITE_ROWS"


def write_rows_setting() -> int:
    """``MAYA_WRITE_ROWS`` (a positive integer), else :data:`WRITE_ROWS`. ConfigError for anything else."""
    raw = os.environ.get(WRITE_ROWS_ENV, "").strip()
    if not raw:
        return WRITE_ROWS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        from maya.settings import ConfigError

        raise ConfigError(f"{WRITE_ROWS_ENV} must be a positive integer (contents per transaction), got {raw!r}")
    return value


class _Writes:
    """Finished batches' new rows, gathered until :meth:`flush` writes them in one transaction."""

    def __init__(self, model_id: str | None):
        self.model_id = model_id
        self.sizes: list[int] = []  # contents of each gathered batch
        self.contents = 0
        self.records: list[ImageRecord] = []
        self.h_shas: list[str] = []
        self.h_bits: list[np.ndarray] = []
        self.s_shas: list[str] = []  # hashes that came with their structure (gray_std, pixel digest)
        self.s_std: list[np.ndarray] = []
        self.s_pixels: list[str] = []
        self.e_shas: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.v_shas: list[str] = []
        self.v_bits: list[np.ndarray] = []
        self.g_shas: list[str] = []
        self.g_thumbs: list[np.ndarray] = []

    def add(self, result: FeatureBatch, records: list[ImageRecord], new_h, new_e, new_v, new_g) -> None:
        self.sizes.append(len(result.records))
        self.contents += len(result.records)
        self.records += records
        self.h_shas += [result.hash_shas[k] for k in new_h]
        self.h_bits.append(result.hash_bits[new_h])
        if len(_std_of(result)) == len(result.hash_shas):
            self.s_shas += [result.hash_shas[k] for k in new_h]
            self.s_std.append(_std_of(result)[new_h])
            self.s_pixels += [result.hash_pixels[k] for k in new_h]
        self.e_shas += [result.embed_shas[k] for k in new_e]
        if new_e:
            self.vectors.append(result.vectors[new_e])
        self.v_shas += [result.hash_shas[k] for k in new_v]
        if new_v:
            self.v_bits.append(result.variant_bits[new_v])
        self.g_shas += [result.hash_shas[k] for k in new_g]
        if new_g:
            self.g_thumbs.append(result.grid_thumbs[new_g])

    def flush(self, con) -> list[int]:
        """Write what was gathered in one transaction; returns the contents of each batch it held (in order), and
        starts afresh."""
        from maya import store
        from maya.hashing import DEFAULT, dihedral, grid
        from maya.store import grid as grid_store
        from maya.store import variants as variant_store

        with store.transaction(con):
            store.save_features(
                con, self.records, DEFAULT.name,
                (self.h_shas, np.concatenate(self.h_bits) if self.h_bits else np.zeros(0, np.uint64)),
                self.model_id, (self.e_shas, np.concatenate(self.vectors) if self.vectors else np.zeros((0, 1), np.float32)),
                structure=(self.s_shas, np.concatenate(self.s_std) if self.s_std else np.zeros(0), self.s_pixels),
            )
            if self.v_shas:
                variant_store.save_variants(con, self.v_shas, dihedral.ALGORITHM, np.concatenate(self.v_bits))
            if self.g_shas:
                grid_store.save_thumbs(con, self.g_shas, grid.ALGORITHM, np.concatenate(self.g_thumbs))
        if store.wal_bytes(con) > store.CHECKPOINT_WAL:
            store.checkpoint(con)  # before DuckDB's own, with its memory bounded
        store.drop_cache(con)  # the rows are in the file: DuckDB need not keep their pages in memory
        sizes = self.sizes
        self.__init__(self.model_id)
        return sizes


def compute_missing(
    con,
    shas: Sequence[str],
    *,
    paths: Mapping[str, str] | None = None,
    model: ModelSpec | None = None,
    model_id: str | None = None,
    batch_size: int = 256,
    max_pixels: int | None = None,
    submit: Callable[..., Future] | None = None,
    in_flight: int = 2,
    write_rows: int | None = None,
    policy: FeaturePolicy = DEDUP_POLICY,
    retry_failed: bool = False,
    progress: Callable[[int], object] | None = None,
    log=None,
    views: bool = False,
) -> FeatureOutcome:
    """pHash every content of ``shas`` that lacks it and, when ``model`` is given, embed those that lack an
    embedding of ``model_id``; write the finished batches in one transaction once they hold ``write_rows``
    contents (None: :func:`write_rows_setting`), and at the end: an interrupted run keeps what was written, and
    a batch smaller than that (the model's, e.g. 8 images) does not pay a transaction of its own.

    ``paths``: a readable path per sha256 (None: the store's most recently seen file of each content to
    compute). ``model_id``: the embeddings looked up (may be given without ``model``: then they are only
    counted). ``submit(items, want_hash, model, max_pixels, retry_delays)`` returns a future of
    :func:`compute_batch` (a Prefect task in a flow); default: a local thread pool. ``in_flight`` batches
    run at once (2: decoding the next batch overlaps the model on this one; memory holds that many batches); with
    the local pool one more waits in its queue, not started, so a free thread need not wait for the writes. ``policy``: see :class:`FeaturePolicy`; ``retry_failed``: try every stored failure again.
    ``progress(total)``: a bar with ``update(n)`` and ``close()``. ``log``: a logger for a line per batch
    and a warning naming a failure. ``views``: the batches also find the inner view box of each image they
    decode (``submit`` gets ``views=True``); they are in ``FeatureOutcome.view_boxes``, for
    ``maya.view_features.compute_views`` (which then decodes only the images that have a view).
    """
    from maya import store
    from maya.hashing import DEFAULT
    from maya.hashing import dihedral, grid
    from maya.store import dedup as dedup_store
    from maya.store import grid as grid_store
    from maya.store import variants as variant_store

    shas = list(dict.fromkeys(shas))
    out = FeatureOutcome()
    for sha, error in store.failed_images(con, shas).items():
        error = error or "corrupt: unknown"
        reason = error.split(":", 1)[0]
        if retry_failed or (policy.skip_stored is not None and reason not in policy.skip_stored):
            continue
        limit = _bomb_limit(error) if reason == "too_large" else None
        if policy.retry_raised_limit and limit is not None and max_pixels and max_pixels > limit:
            continue  # the limit was raised since: try again
        out.problems[sha] = (reason, error)
    have_h = store.load_hashes(con, shas, DEFAULT.name)
    have_v = variant_store.stored(con, shas, dihedral.ALGORITHM)
    # The grid thumbnails (9 KB a content) serve only the rule's model side (the grid clause, smooth pictures):
    # a run without a model neither needs nor stores them, so a phash-mode store does not grow by them.
    want_g = model is not None
    have_g = grid_store.stored(con, shas, grid.ALGORITHM) if want_g else set(shas)
    have_e = dedup_store.embedded_shas(con, shas, model_id) if model_id is not None else set()
    wanted = [s for s in shas if s not in out.problems]
    todo = [s for s in wanted if s not in have_h or s not in have_v or s not in have_g
            or (model is not None and s not in have_e)]
    path_of = dict(paths) if paths is not None else store.image_paths(con, todo)
    no_path = [s for s in todo if s not in path_of]
    for s in no_path:
        out.problems[s] = ("missing", "missing: no readable file of this content is registered")
    todo = [s for s in todo if s in path_of]
    counts = {"images": len(shas), "hashes_computed": 0, "embeddings_computed": 0, "decoded": 0,
              "hashes_reused": sum(s in have_h for s in wanted),
              "embeddings_reused": sum(s in have_e for s in wanted),
              "images_failed": 0, "batches": 0, "worker_pids": set()}

    pool = None
    queued = 0  # batches submitted beyond those running
    if submit is None:
        from maya.malloc import limit_arenas

        limit_arenas()  # before this loop's threads exist: two malloc arenas, not one per thread (maya.malloc)
        pool = ThreadPoolExecutor(max_workers=max(1, in_flight), thread_name_prefix="maya-features")
        submit = lambda *a: pool.submit(compute_batch, *a)  # noqa: E731
        # one batch waits in the pool's queue (not started: no pixels held), so a thread that finishes starts the
        # next batch at once instead of waiting while this thread writes what finished
        queued = 1
    bar = progress(len(todo)) if progress is not None else None

    writes = _Writes(model_id)

    n_batches = -(-len(todo) // max(1, batch_size))
    write_rows = write_rows if write_rows is not None else write_rows_setting()
    written = 0  # images of the batches written so far

    def flush():
        nonlocal written
        if writes.contents:
            for size in writes.flush(con):  # a line per batch, as each is now in the store
                counts["batches"] += 1
                written += size
                if log is not None:
                    log.info("features: batch %d/%d committed (%d/%d images)", counts["batches"], n_batches,
                             written, len(todo))

    def finish(batch, future):
        result: FeatureBatch = future.result()
        keep_records = []
        for rec in result.records:
            if rec.status == "error":
                reason, error = _content_error(rec.error, path_of[rec.sha256])
                out.problems[rec.sha256] = (reason, error)
                if policy.content_errors:
                    if reason in FILE_LEVEL_REASONS:
                        continue  # about the path, not the bytes: do not remember it for this content
                    rec.error = error
            keep_records.append(rec)
        # only what was missing counts as computed (a batch may mix stored and new contents)
        new_h = [k for k, s in enumerate(result.hash_shas) if s not in have_h]
        new_e = [k for k, s in enumerate(result.embed_shas) if s not in have_e]
        new_v = [k for k, s in enumerate(result.hash_shas) if s not in have_v] if result.variant_bits is not None else []
        new_g = ([k for k, s in enumerate(result.hash_shas) if s not in have_g]
                 if want_g and result.grid_thumbs is not None else [])  # a batch of old workers may have none
        writes.add(result, keep_records, new_h, new_e, new_v, new_g)
        have_h.update({result.hash_shas[k]: int(result.hash_bits[k]) for k in new_h})
        have_e.update(result.embed_shas[k] for k in new_e)
        have_v.update(result.hash_shas[k] for k in new_v)
        have_g.update(result.hash_shas[k] for k in new_g)
        counts["hashes_computed"] += len(new_h)
        counts["embeddings_computed"] += len(new_e)
        counts["decoded"] += len(batch)
        counts["worker_pids"].add(result.worker_pid)
        out.view_boxes.update(getattr(result, "view_boxes", None) or {})
        if writes.contents >= write_rows:
            flush()
        if bar is not None:
            bar.update(len(batch))

    try:
        pending: deque = deque()
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            need_h = any(s not in have_h or s not in have_v or s not in have_g for s in batch)
            need_e = model is not None and any(s not in have_e for s in batch)
            items = [(s, path_of[s]) for s in batch]
            pending.append((batch, submit(items, need_h, model if need_e else None, max_pixels,
                                          tuple(policy.transient_retry_delays), *((True,) if views else ()))))
            if len(pending) >= max(1, in_flight) + queued:
                finish(*pending.popleft())
        while pending:
            finish(*pending.popleft())
        flush()
    except BaseException:
        with contextlib.suppress(Exception):  # keep what finished (an error, Ctrl-C): the next run skips it
            flush()
        raise
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    for s in wanted:
        if s not in out.problems and (s not in have_h or (model is not None and s not in have_e)):
            out.problems[s] = ("corrupt", "corrupt: no features could be computed for this image")
    failed = store.failed_images(con, shas)
    counts["images_failed"] = len(failed) + len(no_path)
    if failed and log is not None:
        log.warning("%d image(s) could not be used, e.g. %s", len(failed), next(iter(failed.values())))
    counts["worker_pids"] = sorted(counts["worker_pids"])
    out.counts = counts
    return out


def _bomb_limit(error: str) -> int | None:
    """The ``max_pixels`` a stored ``too_large`` error was decoded under, if it says."""
    m = re.search(r"max_pixels=([\d,]+)", error)
    return int(m.group(1).replace(",", "")) if m else None


def _content_error(text: str | None, path: str) -> tuple[str, str]:
    """``(reason, "reason: detail")`` from a record's error, without the path it was read from."""
    from maya.io.images import REASONS, ImageLoadError

    text = text or "corrupt: unknown error"
    reason = text.split(":", 1)[0].strip()
    prefixes = [f"{reason}: {path}: "]
    if reason in REASONS:
        prefixes.insert(0, str(ImageLoadError(reason, path, "")))
    for prefix in prefixes:
        if text.startswith(prefix):
            return reason, f"{reason}: {text[len(prefix):]}"
    return reason, text
