"""Find the groups of near-duplicate images in folders: the library behind ``maya dedup``.

    walk + identify (sha256, incremental) -> decode once: pHash + embedding of what is missing
    -> candidates (pHash radius search, embedding top-k) -> verify (the decision rule) -> groups -> report

Each step is a function here. :func:`find_duplicates` runs them in this process (no Prefect) and
returns the report; ``flows/dedup.py`` runs the same steps with its tasks. Features are cached by
content in DuckDB (the same tables as the evaluate study), so a second run over the same folders reads
no file again and computes nothing new; without ``db_path`` the cache is an in-memory database.

The decision rule (one rule; the modes are settings of it), for two distinct images with pHash
distance d (bits) and embedding cosine similarity s:

* ``phash``:  d <= phash_accept.
* ``clip``:   s >= clip_strict.
* ``hybrid``: d <= phash_accept, or (d <= phash_radius and s >= clip_verify), or s >= clip_strict.
  The last clause keeps crops, flips and borders, which are far apart in pHash.

Candidates are never all N^2 pairs: pHash pairs come from a radius search over the hashes
(``maya.hashing.index``, multi-index hashing), embedding pairs from each image's ``clip_k`` nearest
neighbours (``maya.embedding.knn``, blockwise matrix products). Byte-identical files are one image (one sha256)
and always one group: ``exact`` duplicates, found without decoding anything twice.

The report (also the JSON of ``maya dedup --json``)::

    {"groups": [{"keep": path,
                 "members": [{"path": ..., "sha256": ..., "phash_distance": int,
                              "clip_similarity": float | None, "exact": bool}, ...],
                 "chained": bool, "weakest_link": {...} | None}, ...],
     "errors": [{"path": ..., "error": "<reason>: <detail>"}, ...]}

``members`` lists every file of the group, the kept one first (distance 0 to itself); scores are to
the kept file. ``exact``: byte-identical to another member. ``clip_similarity`` is None when no
embedding model was used (``--mode phash``). ``chained``/``weakest_link``: see ``maya.dedup.grouping`` (the link is reported for groups of three or
more distinct images, else None).
Paths are exactly as the walk produced them.
"""

from __future__ import annotations

from maya.errors import MayaUsageError

import os
import re
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from maya.io import ingest
from maya.io.atomic import write_atomically

MODES = ("hybrid", "clip", "phash")

# Default thresholds. The pHash numbers come from the evaluate study (`maya demo`): light edits of the
# demo photos (resize, re-encode, colour, blur, noise, small overlays) stay within 0-8 bits, distinct
# photos are >= 22 bits apart, and crops / borders / small rotations spread over 2-30 bits, so 8 accepts
# without a model and 16 is the radius worth asking the model about. The embedding thresholds are for
# L2-normalised CLIP-like embeddings; they are to be replaced by the study's selected values measured
# on the demo with efficientnet-lite0 (see README). Every one has a flag.
PHASH_ACCEPT = 8  # bits: d <= this is a duplicate without asking the model
PHASH_RADIUS = 16  # bits: hybrid asks the model about pairs with PHASH_ACCEPT < d <= this
CLIP_VERIFY = 0.90  # cosine similarity a pHash candidate needs (hybrid), when the study has no number
CLIP_STRICT = 0.95  # cosine similarity at which embedding neighbours match on their own (clip, hybrid)
#: Fallbacks per embedding family when the store holds no evaluate run of the model. Similarities are not
#: comparable across models: efficientnet-lite0's copies score 0.885-0.985 against their originals and
#: different photos at most 0.35 on the demo photos, while CLIP puts unrelated photos at 0.5-0.8.
MODEL_FALLBACKS = {"efficientnet-lite0": (0.80, 0.85)}
CLIP_NEIGHBOURS = 16  # nearest neighbours per image looked at for the embedding-only clause

#: Images per feature batch (decode + pHash + embed, one transaction) when no model sets it.
PHASH_BATCH = 256

#: Error reasons that belong to a path at one moment, not to the content: never cached by sha256.
FILE_LEVEL_REASONS = frozenset({"missing", "unreadable", "is_directory", "changed"})


class DedupUsageError(MayaUsageError, ValueError):
    """A problem with what the caller asked for (missing folder, bad threshold, unknown mode)."""


# ---------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class DedupOptions:
    """How pairs are decided and groups formed. Thresholds: bits for pHash, cosine for embeddings."""

    mode: str = "hybrid"
    phash_accept: int = PHASH_ACCEPT
    phash_radius: int = PHASH_RADIUS
    clip_verify: float | None = None  # None: as measured by the study (measured_options)
    clip_strict: float | None = None
    clip_k: int = CLIP_NEIGHBOURS
    split_chains: bool = False

    @property
    def uses_embeddings(self) -> bool:
        return self.mode in ("hybrid", "clip")

    def check(self) -> "DedupOptions":
        """Return self, or raise :class:`DedupUsageError` naming the bad setting.

        ``clip_verify`` / ``clip_strict`` may be None: "as measured by the study" (see
        :func:`measured_options`), resolved once the model is known."""
        import numpy as np
        if self.mode not in MODES:
            raise DedupUsageError(f"unknown mode {self.mode!r}: use one of {', '.join(MODES)}")
        for name in ("phash_accept", "phash_radius"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= 64:
                raise DedupUsageError(f"{name.replace('_', '-')} must be a whole number of bits in 0..64, got {v!r}")
        if self.mode == "hybrid" and self.phash_radius < self.phash_accept:
            raise DedupUsageError(f"phash-radius ({self.phash_radius}) must be >= phash-accept ({self.phash_accept})")
        for name in ("clip_verify", "clip_strict"):
            v = getattr(self, name)
            if v is None:
                continue
            if not isinstance(v, (int, float, np.floating)) or not -1.0 <= float(v) <= 1.0 or v != v:
                raise DedupUsageError(f"{name.replace('_', '-')} must be a cosine similarity in -1..1, got {v!r}")
        if isinstance(self.clip_k, bool) or not isinstance(self.clip_k, (int, np.integer)) or self.clip_k < 1:
            raise DedupUsageError(f"clip-k must be a whole number >= 1, got {self.clip_k!r}")
        return self

    def as_dict(self) -> dict:
        return {"mode": self.mode, "phash_accept": int(self.phash_accept), "phash_radius": int(self.phash_radius),
                "clip_verify": None if self.clip_verify is None else float(self.clip_verify),
                "clip_strict": None if self.clip_strict is None else float(self.clip_strict),
                "clip_k": int(self.clip_k), "split_chains": bool(self.split_chains)}


def measured_options(con, options: DedupOptions, model_name: str | None, model_id: str | None) -> DedupOptions:
    """Fill the embedding thresholds the caller left as None with what the evaluate study measured.

    From the latest completed evaluate run of the same model (``runs.model`` = ``model_id``) in this store:
    ``clip_verify`` = the cascade's similarity threshold chosen on val, ``clip_strict`` = the CLIP-only
    threshold that reached precision >= 0.99 on val (``method_summary``), else its F1-best one. Without
    such a run: per-model fallbacks (:data:`MODEL_FALLBACKS`), then the CLIP defaults.
    """
    from dataclasses import replace

    if options.clip_verify is not None and options.clip_strict is not None:
        return options
    verify = strict = None
    if model_id is not None:
        row = con.execute(
            """
            SELECT r.run_id,
                   (SELECT clip_threshold FROM metrics m WHERE m.run_id = r.run_id AND m.selected
                        AND m.split = 'val' AND m.method = 'cascade'),
                   (SELECT clip_threshold FROM metrics m WHERE m.run_id = r.run_id AND m.selected
                        AND m.split = 'val' AND m.method = 'clip'),
                   (SELECT threshold_at_p99 FROM method_summary s WHERE s.run_id = r.run_id
                        AND s.split = 'val' AND s.method = 'clip')
            FROM runs r WHERE r.flow = 'evaluate' AND r.status = 'completed' AND r.model = ?
            ORDER BY r.run_id DESC LIMIT 1
            """, [model_id]).fetchone()
        if row is not None:
            verify = row[1]
            strict = row[3] if row[3] is not None and row[3] == row[3] else row[2]
            if strict is not None and verify is not None:
                strict = max(strict, verify)
    fallback = MODEL_FALLBACKS.get(model_name or "", (CLIP_VERIFY, CLIP_STRICT))
    return replace(
        options,
        clip_verify=options.clip_verify if options.clip_verify is not None else (verify if verify is not None else fallback[0]),
        clip_strict=options.clip_strict if options.clip_strict is not None else (strict if strict is not None else fallback[1]),
    ).check()


def check_roots(roots: Iterable[str | os.PathLike]) -> list[str]:
    """The roots as ``str``; :class:`DedupUsageError` when none is given or one does not exist."""
    out = [os.fspath(r) for r in ([roots] if isinstance(roots, (str, bytes, os.PathLike)) else roots)]
    out = [os.fsdecode(r) for r in out]
    if not out:
        raise DedupUsageError("give at least one folder to look in")
    for r in out:
        if not os.path.exists(r):
            raise DedupUsageError(f"no such folder: {r}")
    return out


def decide(d: np.ndarray, sim: np.ndarray | None, options: DedupOptions) -> np.ndarray:
    """The rule that accepted each pair: ``"phash"``, ``"phash+clip"``, ``"clip"``, or ``""`` (no match).

    ``d``: (P,) pHash distances in bits; ``sim``: (P,) cosine similarities, or None without embeddings
    (then only the pHash clause can match). Returns an object array (P,).
    """
    import numpy as np
    d = np.asarray(d, dtype=np.int64)
    rule = np.full(d.shape, "", dtype=object)
    mode = options.mode
    if mode in ("phash", "hybrid"):
        rule[d <= options.phash_accept] = "phash"
    if sim is not None and mode in ("clip", "hybrid"):
        sim = np.asarray(sim, dtype=np.float64)
        if mode == "hybrid":
            verified = (rule == "") & (d <= options.phash_radius) & (sim >= options.clip_verify)
            rule[verified] = "phash+clip"
        rule[(rule == "") & (sim >= options.clip_strict)] = "clip"
    return rule


# ---------------------------------------------------------------------------------------------- progress


class Progress:
    """A progress bar on a terminal; elsewhere a line per update at most every ``interval`` seconds
    (always the first and the last), so logs and tests can follow a long run."""

    def __init__(self, total: int, desc: str, enabled: bool = True, interval: float = 1.0, stream=None):
        self.total, self.desc, self.done = total, desc, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and total > 0
        self.interval = interval
        self._last = None
        self._bar = None
        if self.enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="img", mininterval=0.5, leave=False, file=self.stream)

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if self._last is None or now - self._last >= self.interval or self.done >= self.total:
            self._last = now
            print(f"maya: {self.desc}: {self.done}/{self.total}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _done_future(value) -> Future:
    f: Future = Future()
    f.set_result(value)
    return f


# ---------------------------------------------------------------------------------------------- step 1: files


@dataclass
class Identified:
    """Files identified by content, in walk order, and the paths that could not be used."""

    files: list[ingest.IngestedFile] = field(default_factory=list)
    problems: list[ingest.FileProblem] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # files_found, files_read, files_reused


def identify_files(
    con,
    roots: Sequence[str],
    *,
    follow_symlinks: bool = False,
    include_hidden: bool = False,
    exclude: Sequence[str] = (),
    submit: Callable[[list[str]], Future] | None = None,
    batch_size: int = ingest.DEFAULT_HASH_BATCH,
    in_flight: int = 2,
    progress: bool = False,
) -> Identified:
    """Walk ``roots``, reuse the stored sha256 of unchanged files, read and hash the others.

    ``submit(paths)`` returns a future of ``ingest.sha256_files(paths)`` (a Prefect task in the flow);
    default: computed here. ``in_flight`` batches are submitted ahead; each batch's rows are written
    in one transaction by this process, so an interrupted run keeps what it finished.
    """
    walk = ingest.walk_images(roots, follow_symlinks=follow_symlinks, include_hidden=include_hidden, exclude=exclude)
    reused, to_read = ingest.plan_ingest(con, walk.files)
    submit = submit or (lambda paths: _done_future(ingest.sha256_files(paths)))
    by_path: dict[str, ingest.IngestedFile] = {f.path: f for f in reused}
    problems = list(walk.problems)
    bar = Progress(len(to_read), "reading files", progress)

    def finish(batch, future):
        results = future.result()
        ingest.save_identified(con, batch, results)
        for f, (sha, prob) in zip(batch, results):
            if sha is not None:
                by_path[f.path] = ingest.IngestedFile(f.path, sha, f.size_bytes, f.mtime, False)
            else:
                problems.append(prob)
        bar.update(len(batch))

    pending: deque = deque()
    for start in range(0, len(to_read), batch_size):
        batch = to_read[start:start + batch_size]
        pending.append((batch, submit([f.path for f in batch])))
        if len(pending) >= max(1, in_flight):
            finish(*pending.popleft())
    while pending:
        finish(*pending.popleft())
    bar.close()
    files = [by_path[f.path] for f in walk.files if f.path in by_path]
    counts = {"files_found": len(walk.files) + len(walk.problems), "files_read": len(to_read),
              "files_reused": len(reused)}
    return Identified(files, problems, dict(walk.skipped), counts)


# ---------------------------------------------------------------------------------------------- step 2: features


def batch_features(items: Sequence[tuple[str, str]], want_hash: bool, model, max_pixels: int | None) -> "features.FeatureBatch":
    """Decode ``items`` ((sha256, path) pairs) once; pHash them (if ``want_hash``) and embed them with
    ``model`` (a ``maya.features.ModelSpec``, or None). Failures are records with a reason."""
    import numpy as np

    from maya import features

    result = features.compute_batch(items, want_hash, model, max_pixels)
    for delay in ingest.TRANSIENT_RETRY_DELAYS:  # files that failed with an I/O error: try them again
        retry = [k for k, r in enumerate(result.records)
                 if r.status == "error" and ingest.is_transient(*_content_error(r.error, items[k][1]))]
        if not retry:
            break
        time.sleep(delay)
        again = features.compute_batch([items[k] for k in retry], want_hash, model, max_pixels)
        for k, rec in zip(retry, again.records):
            result.records[k] = rec
        result.hash_shas += again.hash_shas
        result.hash_bits = np.concatenate([result.hash_bits, again.hash_bits])
        result.embed_shas += again.embed_shas
        if again.vectors is not None:
            result.vectors = again.vectors if result.vectors is None else np.concatenate([result.vectors, again.vectors])
    return result


@dataclass
class FeatureOutcome:
    """Per content: the problem, if any (``reason``, ``error`` line); and what was computed or reused."""

    problems: dict[str, tuple[str, str]] = field(default_factory=dict)  # sha256 -> (reason, error)
    counts: dict[str, int] = field(default_factory=dict)


def compute_features(
    con,
    files: Sequence[ingest.IngestedFile],
    options: DedupOptions,
    *,
    model=None,
    model_id: str | None = None,
    batch_size: int = PHASH_BATCH,
    max_pixels: int | None = None,
    submit: Callable[..., Future] | None = None,
    in_flight: int = 2,
    progress: bool = False,
) -> FeatureOutcome:
    """pHash (and, for modes that use them, embed) every distinct content of ``files`` that lacks it.

    Known-bad content (a stored decode failure for that sha256) is not decoded again, except a
    ``too_large`` failure under a smaller ``max_pixels`` than now. ``submit(items, want_hash, model,
    max_pixels)`` returns a future of :func:`batch_features` (a Prefect task in the flow); default:
    computed in a local thread pool. ``in_flight`` batches are submitted ahead (2: decoding the next
    batch overlaps the model on this one; memory holds that many batches). Each batch is written in
    one transaction.
    """
    import numpy as np
    from maya import store
    from maya.hashing.phash import ALGORITHM

    if options.uses_embeddings and (model is None or model_id is None):
        raise ValueError("modes hybrid and clip need a model and its model_id")
    shas: list[str] = []
    path_of: dict[str, str] = {}
    for f in files:
        if f.sha256 not in path_of:
            path_of[f.sha256] = f.path
            shas.append(f.sha256)
    out = FeatureOutcome()
    known_bad = _stored_failures(con, shas)
    for sha, error in known_bad.items():
        reason = error.split(":", 1)[0]
        if reason == "too_large" and _bomb_limit(error) is not None and max_pixels and max_pixels > _bomb_limit(error):
            continue  # the limit was raised since: try again
        out.problems[sha] = (reason, error)
    have_h = store.load_hashes(con, shas, ALGORITHM)
    have_e = _embedded(con, shas, model_id) if options.uses_embeddings else set()
    wanted = [s for s in shas if s not in out.problems]
    todo = [s for s in wanted if s not in have_h or (options.uses_embeddings and s not in have_e)]
    counts = {"images": len(shas), "hashes_computed": 0, "embeddings_computed": 0, "decoded": 0,
              "hashes_reused": sum(s in have_h for s in wanted),
              "embeddings_reused": sum(s in have_e for s in wanted)}

    pool = None
    if submit is None:
        pool = ThreadPoolExecutor(max_workers=max(1, in_flight), thread_name_prefix="maya-features")
        submit = lambda *a: pool.submit(batch_features, *a)  # noqa: E731
    bar = Progress(len(todo), "features", progress)

    def finish(batch, future):
        result = future.result()
        keep_records = []
        for rec in result.records:
            if rec.status == "error":
                reason, error = _content_error(rec.error, path_of[rec.sha256])
                out.problems[rec.sha256] = (reason, error)
                if reason in FILE_LEVEL_REASONS:
                    continue  # about the path, not the bytes: do not remember it for this content
                rec.error = error
            keep_records.append(rec)
        new_h = [k for k, s in enumerate(result.hash_shas) if s not in have_h]
        new_e = [k for k, s in enumerate(result.embed_shas) if s not in have_e]
        store.save_features(
            con, keep_records, ALGORITHM,
            ([result.hash_shas[k] for k in new_h], result.hash_bits[new_h]),
            model_id, ([result.embed_shas[k] for k in new_e],
                       result.vectors[new_e] if new_e else np.zeros((0, 1), np.float32)),
        )
        have_h.update({result.hash_shas[k]: int(result.hash_bits[k]) for k in new_h})
        have_e.update(result.embed_shas[k] for k in new_e)
        counts["hashes_computed"] += len(new_h)
        counts["embeddings_computed"] += len(new_e)
        counts["decoded"] += len(batch)
        bar.update(len(batch))

    try:
        pending: deque = deque()
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            need_h = any(s not in have_h for s in batch)
            need_e = options.uses_embeddings and any(s not in have_e for s in batch)
            items = [(s, path_of[s]) for s in batch]
            pending.append((batch, submit(items, need_h, model if need_e else None, max_pixels)))
            if len(pending) >= max(1, in_flight):
                finish(*pending.popleft())
        while pending:
            finish(*pending.popleft())
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    for s in wanted:
        if s not in out.problems and (s not in have_h or (options.uses_embeddings and s not in have_e)):
            out.problems[s] = ("corrupt", "corrupt: no features could be computed for this image")
    out.counts = counts
    return out


def _stored_failures(con, shas: Sequence[str]) -> dict[str, str]:
    import numpy as np
    _maya_q = {"sha256": np.array(list(shas), dtype=object)}  # noqa: F841
    if not shas:
        return {}
    return dict(con.execute(
        "SELECT i.sha256, coalesce(i.error, 'corrupt: unknown') FROM images i JOIN _maya_q q USING (sha256) "
        "WHERE i.status = 'error'").fetchall())


def _embedded(con, shas: Sequence[str], model_id: str) -> set[str]:
    import numpy as np
    _maya_q = {"sha256": np.array(list(shas), dtype=object)}  # noqa: F841
    if not shas:
        return set()
    return {s for (s,) in con.execute(
        "SELECT e.sha256 FROM embeddings e JOIN _maya_q q USING (sha256) WHERE e.model = ?", [model_id]).fetchall()}


def _bomb_limit(error: str) -> int | None:
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


# ---------------------------------------------------------------------------------------------- step 3: load


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
    from maya.hashing.phash import ALGORITHM

    shas = list(shas)
    hashes_by = store.load_hashes(con, shas, ALGORITHM)
    hashes = np.array([hashes_by[s] for s in shas], dtype=np.uint64)
    _maya_q = {"sha256": np.array(shas, dtype=object), "pos": np.arange(len(shas), dtype=np.int64)}  # noqa: F841
    size = con.execute("SELECT q.pos, i.width, i.height FROM _maya_q q LEFT JOIN images i USING (sha256)").fetchnumpy()
    width = np.zeros(len(shas), dtype=np.int64)
    height = np.zeros(len(shas), dtype=np.int64)
    if len(shas):
        width[size["pos"]] = np.nan_to_num(np.asarray(size["width"], dtype=np.float64)).astype(np.int64)
        height[size["pos"]] = np.nan_to_num(np.asarray(size["height"], dtype=np.float64)).astype(np.int64)
    vectors = None
    if model_id is not None and shas:
        dim = con.execute("SELECT dim FROM embeddings WHERE model = ? LIMIT 1", [model_id]).fetchone()
        vectors = np.zeros((len(shas), dim[0] if dim else 0), dtype=np.float32)
        for start in range(0, len(shas), chunk):
            _maya_q = {"sha256": np.array(shas[start:start + chunk], dtype=object),  # noqa: F841
                       "pos": np.arange(start, min(start + chunk, len(shas)), dtype=np.int64)}
            got = con.execute("SELECT q.pos, e.vector FROM embeddings e JOIN _maya_q q USING (sha256) "
                              "WHERE e.model = ?", [model_id]).fetchnumpy()
            if len(got["pos"]):
                vectors[got["pos"]] = np.stack(got["vector"]).astype(np.float32)
    return Images(shas, hashes, vectors, width, height)


# ---------------------------------------------------------------------------------------------- step 4-5: pairs


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


def pair_similarity(vectors: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Cosine similarity (float64 (P,)) of rows ``a[k]`` and ``b[k]`` of unit ``vectors``, in chunks."""
    import numpy as np
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), chunk):
        va, vb = vectors[a[s:s + chunk]], vectors[b[s:s + chunk]]
        out[s:s + chunk] = np.einsum("ij,ij->i", va, vb, dtype=np.float64)
    return out


def verify_pairs(images: Images, a: np.ndarray, b: np.ndarray, options: DedupOptions) -> Pairs:
    """Score candidates (pHash distance; similarity when there are embeddings) and keep those the rule accepts."""
    import numpy as np
    from maya.hashing.phash import hamming

    d = hamming(images.hashes[a], images.hashes[b]).astype(np.int64)
    use_sim = options.uses_embeddings and images.vectors is not None
    sim = pair_similarity(images.vectors, a, b) if use_sim else np.full(len(a), np.nan)
    rule = decide(d, sim if use_sim else None, options)
    keep = rule != ""
    return Pairs(a[keep], b[keep], d[keep], sim[keep], rule[keep])


# ---------------------------------------------------------------------------------------------- step 6: groups


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
    from maya.dedup import grouping
    from maya.hashing.phash import hamming

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
            return pair_similarity(images.vectors, a, b)
        return 1.0 - hamming(images.hashes[a], images.hashes[b]).astype(np.float64) / 64.0

    def accepts(x, y):
        d = hamming(images.hashes[x], images.hashes[y]).astype(np.int64)
        sim = pair_similarity(images.vectors, x, y) if use_sim else None
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
    from maya.hashing.phash import hamming

    rep = int(items[0])
    keep_file = files_of[rep][0]
    members = []
    for k in items:
        k = int(k)
        d = int(hamming(images.hashes[k], images.hashes[rep]))
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
        d = int(hamming(images.hashes[wa], images.hashes[wb]))
        sim = round(float(np.dot(images.vectors[wa], images.vectors[wb])), 6) if use_sim else None
        link = {"a": files_of[wa][0].path, "b": files_of[wb][0].path, "phash_distance": d, "clip_similarity": sim}
    return DuplicateGroup([keep] + rest, bool(chained), bool(split), link)


# ---------------------------------------------------------------------------------------------- step 7: report


def file_errors(identified: Identified, outcome: FeatureOutcome) -> list[ingest.FileProblem]:
    """One problem per path that could not be used: walk and read problems, then decode problems
    expanded to every path holding that content. Sorted by path."""
    out = list(identified.problems)
    for f in identified.files:
        p = outcome.problems.get(f.sha256)
        if p is not None:
            out.append(ingest.FileProblem(f.path, p[0], p[1]))
    unique = {p.path: p for p in reversed(out)}  # overlapping roots can meet a bad path twice: once
    return sorted(unique.values(), key=lambda p: p.path)


def build_report(groups: Sequence[DuplicateGroup], errors: Sequence[ingest.FileProblem]) -> dict:
    """The JSON-ready report (see the module docstring)."""
    return {
        "groups": [
            {
                "keep": g.keep.path,
                "members": [{"path": m.path, "sha256": m.sha256, "phash_distance": m.phash_distance,
                             "clip_similarity": m.clip_similarity, "exact": m.exact} for m in g.members],
                "chained": g.chained,
                "weakest_link": g.weakest_link,
            }
            for g in groups
        ],
        "errors": [{"path": e.path, "error": e.error} for e in errors],
    }


# ---------------------------------------------------------------------------------------------- step 8: store


def start_dedup_run(con, roots: Sequence[str], options: DedupOptions, model_id: str | None, parameters: dict,
                    flow_run_id: str | None = None) -> int:
    """Add a ``runs`` row (flow 'dedup', status 'running'); earlier dedup runs still 'running' are marked
    'interrupted' by :func:`maya.store.start_run`."""
    from maya import store

    params = {"roots": [ingest.path_text(r) for r in roots], **options.as_dict(), **parameters}
    return store.start_run(con, flow="dedup", dataset=None, model=model_id, parameters=params,
                           flow_run_id=flow_run_id)


def save_dedup_results(con, run_id: int, roots: Sequence[str], options: DedupOptions, images: Images,
                       pairs: Pairs, groups: Sequence[DuplicateGroup], errors: Sequence[ingest.FileProblem],
                       counts: dict) -> None:
    """Write the run's pairs, groups, members and errors (sql/dedup.sql) in one transaction."""
    import numpy as np
    import json

    from maya import store

    pt = ingest.path_text
    with store.transaction(con):
        # pairs by content, the smaller sha256 first; indices are turned into sha256 inside DuckDB, so
        # no Python string is made per pair
        p = len(pairs)
        _maya_shas = {"k": np.arange(len(images.sha256), dtype=np.int64),  # noqa: F841
                      "sha256": np.array(images.sha256, dtype=object)}
        _maya_pairs = {"a": pairs.a.astype(np.int64), "b": pairs.b.astype(np.int64),  # noqa: F841
                       "d": pairs.phash_distance.astype(np.int64), "s": pairs.clip_similarity.astype(np.float64),
                       "rule": pairs.rule}
        if p:
            con.execute(
                "INSERT INTO dedup_pairs (run_id, a, b, phash_distance, clip_similarity, rule) "
                "SELECT ?, least(x.sha256, y.sha256), greatest(x.sha256, y.sha256), p.d, "
                "CASE WHEN isnan(p.s) THEN NULL ELSE p.s END, p.rule "
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
             counts.get("files_read", 0), counts.get("files_reused", 0), len(errors), len(images.sha256), p,
             len(groups), sum(len(g.members) - 1 for g in groups),
             sum(m.size_bytes for g in groups for m in g.members[1:])],
        )


# ---------------------------------------------------------------------------------------------- the whole run


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


def summarise_counts(identified: Identified, outcome: FeatureOutcome, errors, groups) -> dict:
    """All the counts of a run in one flat dict (what the CLI prints and the tests check)."""
    return {
        **identified.counts, **outcome.counts,
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
) -> DedupRun:
    """Run every step in this process (no Prefect) and record the run in the store.

    ``db_path``: the DuckDB file that caches file identities and features and records the run
    (None: an in-memory database, nothing kept). ``exclude``: folders not to enter (see
    ``maya.io.ingest``). Other arguments as in :func:`find_duplicates`.
    """
    import duckdb

    from maya import features, store

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
    if db_path is None:
        con = duckdb.connect(":memory:")
        store.apply_schema(con)
    else:
        con = store.connect(db_path)
    try:
        options = measured_options(con, options, spec.name if spec else None, model_id)
        run_id = start_dedup_run(con, roots, options, model_id,
                                 {"model": model if spec else None, "batch_size": batch,
                                  "follow_symlinks": follow_symlinks, "include_hidden": include_hidden})
        try:
            identified = identify_files(con, roots, follow_symlinks=follow_symlinks, include_hidden=include_hidden,
                                        exclude=exclude, progress=progress)
            outcome = compute_features(con, identified.files, options, model=spec, model_id=model_id,
                                       batch_size=batch, max_pixels=max_pixels, progress=progress)
            ok = [s for s in dict.fromkeys(f.sha256 for f in identified.files) if s not in outcome.problems]
            images = load_images(con, ok, model_id if options.uses_embeddings else None)
            a, b = candidate_pairs(images, options)
            pairs = verify_pairs(images, a, b, options)
            groups = duplicate_groups(images, identified.files, pairs, options)
            errors = file_errors(identified, outcome)
            counts = summarise_counts(identified, outcome, errors, groups)
            save_dedup_results(con, run_id, roots, options, images, pairs, groups, errors, counts)
            store.finish_run(con, run_id, status="completed", counts={**counts, "images_failed": len(errors)})
        except BaseException:
            store.finish_run(con, run_id, status="failed")
            raise
        return DedupRun(build_report(groups, errors), groups, errors, counts, identified.skipped, run_id,
                        model_id, options)
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
) -> dict:
    """Groups of near-duplicate images under ``paths``, as the JSON structure of ``maya dedup --json``.

    Args:
        paths: a folder or file, or a list of them (searched recursively).
        mode: ``"hybrid"`` (default), ``"clip"`` or ``"phash"`` (no model is loaded); see the module docstring.
        model: embedding model for hybrid/clip: hub id, local CLIP folder or ``"efficientnet-lite0"``
            (default ``maya.settings.DEFAULT_MODEL``). device, precision, batch_size: where and how it runs.
        phash_accept, phash_radius: bits. clip_verify, clip_strict: cosine similarities. clip_k: embedding
            neighbours per image. split_chains: cut chained groups at their weakest links.
        follow_symlinks, include_hidden: walk options (both off by default).
        max_pixels: largest declared width x height decoded (default ``maya.io.images.DEFAULT_MAX_PIXELS``).
        db_path: a DuckDB file to cache identities and features in (a second call reads nothing again);
            None keeps everything in memory.
        progress: show progress on stderr.

    Returns:
        ``{"groups": [...], "errors": [...]}`` (module docstring). Files that cannot be used are listed
        under ``errors``; they never raise. Raises :class:`DedupUsageError` for a missing folder or a bad
        setting, ``maya.embedding.models.ModelLoadError`` when the model cannot be loaded.
    """
    options = DedupOptions(mode, phash_accept, phash_radius, clip_verify, clip_strict, clip_k, split_chains)
    return run_dedup(paths, options, db_path=db_path, model=model, device=device, precision=precision,
                     batch_size=batch_size, max_pixels=max_pixels, follow_symlinks=follow_symlinks,
                     include_hidden=include_hidden, progress=progress).report


# ---------------------------------------------------------------------------------------------- outputs


def write_json(report: dict, path: str | os.PathLike) -> None:
    """Write the report as JSON (``"-"``: standard output). Written to a temporary file, then renamed.

    Paths with bytes that are not UTF-8 are written as JSON ``\\udcXX`` escapes, which ``json.load``
    turns back into the same ``str`` (``os.fsencode`` of it is the name on disk).
    """
    import json

    text = json.dumps(report, indent=1, ensure_ascii=True) + "\n"
    if os.fspath(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    write_atomically(path, text.encode("ascii"))


def write_outputs(report: dict, groups: Sequence[DuplicateGroup], *, json_path=None, csv_path=None,
                  html_path=None, progress: bool = False) -> dict:
    """Write whichever of the JSON report, the CSV and the HTML gallery were asked for.

    Returns ``{"json": path, "csv": path, "html": path}`` for those written.
    """
    from maya.report import gallery

    written = {}
    if json_path:
        write_json(report, json_path)
        written["json"] = os.fspath(json_path)
    if csv_path:
        gallery.write_csv(groups, csv_path)
        written["csv"] = os.fspath(csv_path)
    if html_path:
        gallery.write_html(groups, report["errors"], html_path, progress=progress)
        written["html"] = os.fspath(html_path)
    return written
