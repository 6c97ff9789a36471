"""Labelled pairs: build a benchmark from a folder of originals with seeded edits, or import one from CSV.

Building (:func:`build_pairs`), in the manner of Copydays and the ISC2021 / DISC21 augmentations:

* **Positives** -- each original gets ``positives_per_original`` single edits and
  ``chains_per_original`` chains of 2-3 edits from :mod:`maya.pairs.transforms` (27 kinds, each at a
  light / medium / strong level). Kinds are dealt out evenly over the whole set, and each kind's
  levels in turn, so every (kind, level) cell of a per-transformation report gets about the same
  number of pairs. Pair row: ``(original, edited copy)``, ``kind`` = the edit, ``params`` = every
  parameter drawn (JSON), including ``level``. Two edits of one original that give the same bytes
  (hue or saturation of a grey photo change nothing) make one pair, the first edit's.
* **Semantic positives** -- with ``groups`` (sub-folders, a CSV, or a mapping), different originals of
  one group ("different shots of the same thing") are paired, ``kind='semantic'``.
* **Negatives** -- ``negatives_per_positive`` times as many as positives: a ``hard_negative_fraction``
  of them hard, the rest random pairs of different originals. Hard by pHash
  (``hard_negative_phash``): each original's nearest other originals by pHash distance, nearest first,
  and of their images (original and edited copies) the two closest in pHash. With an ``embedder``,
  half of the hard ones are by embedding instead (``hard_negative_embedding``): nearest other
  originals by cosine similarity. A negative never joins two originals of one group, nor two
  originals whose pHash distance is <= :data:`NEAR_DUPLICATE_BITS` (the folder holds the same picture
  twice; such pairs are reported).
* **Splits** -- 'val' / 'test' by original (by group, where groups are given): no original, and none
  of its copies, appears in both. Negatives pair originals of one split only.
* **Derived images** are written once, content-addressed (``images_dir/ab/abcd....png``); pairs refer
  to images by sha256.

Determinism: the same source files, seed and parameters give byte-identical derived images and
identical pair rows, whatever the number of worker threads and however they are scheduled (every
edit draws from its own generator, seeded by (seed, original's position, edit number); results are
collected in order). Another seed gives other edits, splits and negatives. Byte identity holds for
one Pillow / libjpeg / libwebp / zlib build (see :mod:`maya.pairs.transforms`).

Import (:func:`import_pairs`): a CSV of ``a,b,label`` with optional ``kind``, ``split``, ``params``.
"""

from __future__ import annotations

from maya.errors import MayaUsageError
from maya.io.atomic import write_atomically

import csv
import hashlib
import json
import math
import os
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
#: Originals larger than this (long side, px) are scaled down before editing, to bound time and memory.
MAX_EDIT_SIDE = 2048
#: Two originals this close in pHash (bits) are taken to be the same picture: never a negative pair.
#: Different photos are >= 18 bits apart in practice; re-saves and resizes of one photo 0-4.
NEAR_DUPLICATE_BITS = 4
#: Shorter side (px) images are decoded at for pHash and embeddings; the same as the evaluate
#: flow's decode (``maya.features.DECODE_MIN_SIDE``), so the hashes here equal the flow's.
SURVEY_MIN_SIDE = 256

KIND_SEMANTIC = "semantic"
KIND_HARD_PHASH = "hard_negative_phash"
KIND_HARD_EMBEDDING = "hard_negative_embedding"
KIND_RANDOM = "random_negative"
NEGATIVE_KINDS = (KIND_HARD_PHASH, KIND_HARD_EMBEDDING, KIND_RANDOM)

_SURVEY_CHUNK = 64  # originals decoded (and embedded) at a time in the survey


class PairsError(MayaUsageError, ValueError):
    """A problem with the user's input that stops the whole build or import."""


@dataclass(frozen=True)
class Pair:
    pair_id: int
    a: str  # sha256
    b: str  # sha256
    label: bool
    kind: str
    params: dict | None
    split: str
    original: str | None  # sha256 of the original the pair was made from (the split unit)


@dataclass(frozen=True)
class FileRecord:
    path: str
    sha256: str | None
    size_bytes: int | None
    mtime: float | None
    status: str  # 'ok' | 'error'
    error: str | None = None


@dataclass
class PairSet:
    """What a build or an import produced.

    pairs:   the labelled pairs, ``pair_id`` 0..n-1 in a fixed order.
    files:   one record per file seen (originals, derived images, unreadable files).
    errors:  one human line per problem (a row, a file, a near-duplicate pair of originals).
    hashes:  pHash bits (``maya.hashing.phash`` / ``ALGORITHM``, decoded at :data:`SURVEY_MIN_SIDE`) of every
             image a build looked at, sha256 -> int; empty for imports.
    timings: seconds per build phase ("survey", "edits", "negatives"), for benchmarks.
    """

    pairs: list[Pair] = field(default_factory=list)
    files: list[FileRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    hashes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.pairs:
            out[p.kind] = out.get(p.kind, 0) + 1
        return dict(sorted(out.items()))


def list_images(root: str | Path, *, follow_symlinks: bool = False, include_hidden: bool = False,
                exclude: str | Path | None = None) -> list[Path]:
    """Image files under ``root`` (recursive, by extension), sorted for determinism.

    ``exclude``: a folder not to look into (the derived-images folder, when it lies inside ``root``:
    a second build must not take the first one's edited copies for originals).
    """
    root = Path(root)
    if not root.exists():
        raise PairsError(f"no such folder: {root}")
    if root.is_file():
        return [root]
    skip = Path(exclude).resolve() if exclude is not None else None
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
        if not include_hidden:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if skip is not None:
            dirnames[:] = [d for d in dirnames if (Path(dirpath) / d).resolve() != skip]
        dirnames.sort()
        for name in sorted(filenames):
            if not include_hidden and name.startswith("."):
                continue
            p = Path(dirpath) / name
            if p.suffix.lower() in IMAGE_EXTENSIONS and (follow_symlinks or not p.is_symlink()):
                found.append(p)
    return sorted(found)


def file_record(path: Path, data: bytes | None = None, error: str | None = None) -> FileRecord:
    try:
        st = path.stat()
        size, mtime = st.st_size, st.st_mtime
    except OSError:
        size = mtime = None
    if data is None:
        return FileRecord(str(path), None, size, mtime, "error", error)
    return FileRecord(str(path), hashlib.sha256(data).hexdigest(), size, mtime, "ok", None)


def store_derived(images_dir: Path, data: bytes, ext: str) -> tuple[str, Path]:
    """Write ``data`` content-addressed under ``images_dir`` (atomic, once). Returns (sha256, path).

    Safe to call from several threads or processes at once: each writes a temporary file and
    renames it into place, so a reader never sees a partial file.
    """
    sha = hashlib.sha256(data).hexdigest()
    path = Path(images_dir) / sha[:2] / f"{sha}.{ext}"
    if not path.exists():
        write_atomically(path, data, mode=0o600)
    return sha, path


def _split_originals(n: int, seed: int, val_fraction: float) -> np.ndarray:
    """Seeded 'val' / 'test' for ``n`` units: (n,) object array, round(n * val_fraction) of them
    'val' (at least one of each when n >= 2)."""
    rng = np.random.default_rng([seed, 0x5B117])
    order = rng.permutation(n)
    n_val = int(round(n * val_fraction))
    if n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    split = np.empty(n, dtype=object)
    split[order[:n_val]] = "val"
    split[order[n_val:]] = "test"
    return split


def _working_copy(image):
    from PIL import Image

    w, h = image.size
    if max(w, h) > MAX_EDIT_SIDE:
        scale = MAX_EDIT_SIDE / max(w, h)
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    return image


# ---------------------------------------------------------------------------------------------- groups


def read_groups(source: str | Path, groups, originals: list[Path]) -> tuple[dict[Path, str], list[str]]:
    """Which group each original belongs to, for semantic positives.

    groups:
        ``"subfolders"`` -- an image's group is its folder relative to ``source``
        (``source/cats/a.jpg`` and ``source/cats/b.jpg`` are one group, "cats"); images directly
        in ``source`` belong to no group.
        a CSV path -- columns ``path,group``; paths relative to the CSV's folder (or absolute).
        a mapping -- path (relative to ``source``, or absolute) -> group name.
    originals: the image paths found under ``source``.
    Returns ({resolved path -> group name} for grouped originals only, problems as text lines).
    A CSV row that names no image under ``source`` is a problem, not an error.
    """
    source = Path(source).resolve()
    by_resolved = {p.resolve(): p for p in originals}
    problems: list[str] = []
    out: dict[Path, str] = {}
    if groups == "subfolders":
        for p in originals:
            rel = p.resolve().relative_to(source).parent if source.is_dir() else Path(".")
            if rel != Path("."):
                out[p.resolve()] = rel.as_posix()
        return out, problems
    if isinstance(groups, Mapping):
        entries = [(None, str(k), str(v)) for k, v in groups.items()]
        base = source
        where = "groups"
    else:
        csv_path = Path(groups)
        try:
            text = csv_path.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise PairsError(f"cannot read the groups file {csv_path}: {e.strerror or e}") from None
        reader = csv.DictReader(text.splitlines())
        names = [(f or "").strip().lower() for f in (reader.fieldnames or [])]
        if not {"path", "group"} <= set(names):
            raise PairsError(f"{csv_path}: a groups CSV needs the columns path,group (found: {', '.join(names)})")
        entries = []
        for lineno, row in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
            entries.append((lineno, row.get("path", ""), row.get("group", "")))
        base = csv_path.resolve().parent
        where = str(csv_path)
    for lineno, raw, group in entries:
        at = f"{where}:{lineno}" if lineno is not None else where
        if not raw or not group:
            problems.append(f"{at}: empty path or group")
            continue
        p = Path(raw)
        p = (p if p.is_absolute() else base / p).resolve()
        if p not in by_resolved:
            problems.append(f"{at}: {raw} is not an image under {source}")
            continue
        if p in out and out[p] != group:
            problems.append(f"{at}: {raw} is in two groups ({out[p]!r}, {group!r}); kept {out[p]!r}")
            continue
        out[p] = group
    return out, problems


# ---------------------------------------------------------------------------------------------- build


@dataclass(frozen=True)
class _Original:
    index: int
    sha256: str
    path: Path
    group: str | None


@dataclass(frozen=True)
class _EditSpec:
    kind: str | None  # None: a chain
    level: str
    rng_key: tuple[int, ...]


@dataclass(frozen=True)
class _Derived:
    sha256: str
    path: Path
    size_bytes: int
    kind: str
    params: dict
    bits: int  # pHash


def build_pairs(
    source: str | Path,
    images_dir: str | Path,
    *,
    seed: int = 0,
    positives_per_original: int = 8,
    chains_per_original: int = 2,
    negatives_per_positive: float = 1.0,
    hard_negative_fraction: float = 0.5,
    val_fraction: float = 0.5,
    levels: tuple[str, ...] = ("light", "medium", "strong"),
    max_pixels: int | None = None,
    embedder=None,
    groups=None,
    semantic_pairs_per_original: int = 2,
    workers: int | None = None,
) -> PairSet:
    """Make a labelled benchmark from the images under ``source`` (see the module docstring).

    Args:
        source: a folder (searched recursively) or one image file.
        images_dir: where derived images are written, content-addressed.
        seed: fixes every random choice: edits, levels, splits, negatives.
        positives_per_original: single edits per original.
        chains_per_original: chains of 2-3 edits per original.
        negatives_per_positive: negatives made per positive (semantic positives included); the
            ratio is met unless the originals are too few (then ``errors`` says so).
        hard_negative_fraction: share of the negatives that are hard (0..1).
        val_fraction: share of originals (of groups, with ``groups``) in the 'val' split.
        levels: the levels edits are drawn at, used in turn.
        max_pixels: decompression-bomb guard for the originals (declared width * height).
        embedder: optional embedding model: half of the hard negatives are then the nearest
            originals by cosine similarity of its embeddings. An :class:`maya.embedding.models.Embedder`
            (anything with ``embed_images`` and ``model_id``), a :class:`maya.features.ModelSpec`,
            or a model name as ``load_embedder`` takes it (the last two are loaded once per process,
            and are plain data, so a cached task can take them as a parameter).
        groups: None, ``"subfolders"``, a CSV path (``path,group``) or a mapping path -> group;
            see :func:`read_groups`. Originals of one group are paired as ``semantic`` positives,
            share a split, and are never paired as negatives.
        semantic_pairs_per_original: in a group of n originals, all n(n-1)/2 pairs when that is at
            most ceil(n * this / 2), else a seeded set in which every original has this many partners.
        workers: edit threads (default :func:`default_workers`); the result does not depend on it.

    Files that cannot be read are reported in ``errors`` and skipped; fewer than two usable
    originals is a :class:`PairsError`.
    """
    from maya.pairs import transforms

    _check_options(positives_per_original, chains_per_original, negatives_per_positive,
                   hard_negative_fraction, val_fraction, levels, semantic_pairs_per_original)
    images_dir = Path(images_dir)
    from maya.features import default_workers

    workers = workers or default_workers()
    embedder = _resolve_embedder(embedder)
    paths = list_images(source, exclude=images_dir)
    if not paths:
        raise PairsError(f"no images found under {source}")
    out = PairSet()

    t0 = time.perf_counter()
    group_of: dict[Path, str] = {}
    if groups is not None:
        group_of, problems = read_groups(source, groups, paths)
        out.errors.extend(problems)
    originals, bits, embeddings = _survey(paths, group_of, max_pixels, embedder, workers, out)
    if len(originals) < 2:
        raise PairsError(f"need at least 2 readable images under {source}, found {len(originals)}")
    out.timings["survey"] = time.perf_counter() - t0

    # Splits by unit: a group, or an original on its own.
    unit_of = [("g", o.group) if o.group is not None else ("o", o.sha256) for o in originals]
    units = list(dict.fromkeys(unit_of))  # first-appearance order
    if len(units) < 2:
        raise PairsError(f"all {len(originals)} originals under {source} are in one group: a benchmark needs "
                         f"photos of at least two different things (for negatives and for two splits)")
    unit_split = dict(zip(units, _split_originals(len(units), seed, val_fraction)))
    split = np.array([unit_split[u] for u in unit_of], dtype=object)

    t0 = time.perf_counter()
    plans = _plan_edits(len(originals), seed, positives_per_original, chains_per_original, levels, transforms)
    derived = _make_derived(originals, plans, images_dir, max_pixels, workers)
    out.timings["edits"] = time.perf_counter() - t0

    rows: list[tuple] = []  # (a, b, label, kind, params, split, original)
    for o, made in zip(originals, derived):
        distinct = {}
        for d in made:
            out.files.append(FileRecord(str(d.path), d.sha256, d.size_bytes, _mtime(d.path), "ok"))
            out.hashes[d.sha256] = d.bits
            # Two edits can give the same bytes (hue and saturation of a grey photo change nothing):
            # one pair, the first edit's.
            if d.sha256 not in distinct and d.sha256 != o.sha256:
                distinct[d.sha256] = d
                rows.append((o.sha256, d.sha256, True, d.kind, d.params, split[o.index], o.sha256))
        derived[o.index] = list(distinct.values())
    rows.extend(_semantic_rows(originals, split, seed, semantic_pairs_per_original))

    t0 = time.perf_counter()
    members = [[(o.sha256, int(bits[o.index]))] + [(d.sha256, d.bits) for d in made]
               for o, made in zip(originals, derived)]
    negatives = _NegativeMaker(originals, split, bits, members, seed, out.errors)
    n_pos = len(rows)
    n_neg = int(round(n_pos * negatives_per_positive))
    n_hard = int(round(n_neg * hard_negative_fraction))
    n_hard_embedding = n_hard // 2 if embeddings is not None else 0
    negatives.hard_by_phash(n_hard - n_hard_embedding)
    if embeddings is not None:
        negatives.hard_by_embedding(n_hard_embedding, embeddings, getattr(embedder, "model_id", None))
    negatives.random(n_neg - len(negatives.rows))
    if len(negatives.rows) < n_neg:
        out.errors.append(f"made {len(negatives.rows)} of {n_neg} negatives: too few originals in a split "
                          f"to pair differently (use more originals or a smaller --negatives)")
    rows.extend(negatives.rows)
    out.timings["negatives"] = time.perf_counter() - t0

    out.pairs = [
        Pair(k, a, b, bool(label), kind, params, str(sp), orig)
        for k, (a, b, label, kind, params, sp, orig) in enumerate(rows)
    ]
    return out


def _check_options(positives, chains, ratio, hard_fraction, val_fraction, levels, semantic) -> None:
    from maya.pairs.transforms import LEVELS

    if positives < 0 or chains < 0 or semantic < 0:
        raise PairsError("positives, chains and semantic pairs per original must be >= 0")
    if not (ratio >= 0 and math.isfinite(ratio)):
        raise PairsError(f"negatives per positive must be a number >= 0, not {ratio}")
    if not 0 <= hard_fraction <= 1:
        raise PairsError(f"the hard negative fraction must be in [0, 1], not {hard_fraction}")
    if not 0 <= val_fraction <= 1:
        raise PairsError(f"the validation fraction must be in [0, 1], not {val_fraction}")
    bad = [lv for lv in levels if lv not in LEVELS]
    if not levels or bad:
        raise PairsError(f"levels must be some of {', '.join(LEVELS)}; got {', '.join(map(str, levels)) or 'none'}")


def _resolve_embedder(embedder):
    """An object with ``embed_images``, from an Embedder, a ModelSpec or a model name (or None)."""
    if embedder is None or hasattr(embedder, "embed_images"):
        return embedder
    from maya import features

    if isinstance(embedder, str):
        embedder = features.ModelSpec(embedder)
    if isinstance(embedder, features.ModelSpec):
        return features.get_embedder(embedder)
    raise TypeError(f"embedder must be an Embedder, a ModelSpec or a model name, not {type(embedder).__name__}")


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _survey(paths, group_of, max_pixels, embedder, workers, out: PairSet):
    """Read every file once at reduced scale: identity, pHash, embedding. Duplicates by bytes are
    used once. Returns (originals, pHash bits (N,) uint64, embeddings (N, d) float32 or None)."""
    from maya.io import images as imageio
    from maya.hashing import phash

    kw = {"min_side": SURVEY_MIN_SIDE}
    if max_pixels:
        kw["max_pixels"] = max_pixels

    def look(p: Path):
        try:
            loaded = imageio.load_image(p, **kw)
        except imageio.ImageLoadError as e:
            return p, None, e
        return p, loaded, int(phash.phash_bits([loaded.image])[0])

    originals: list[_Original] = []
    bits: list[int] = []
    vectors: list[np.ndarray] = []
    seen: dict[str, Path] = {}
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(paths), _SURVEY_CHUNK):
            keep = []
            for p, loaded, result in pool.map(look, paths[start:start + _SURVEY_CHUNK]):
                if loaded is None:
                    out.errors.append(str(result))
                    out.files.append(file_record(p, None, str(result)))
                    continue
                out.files.append(FileRecord(str(p), loaded.sha256, loaded.size_bytes, _mtime(p), "ok"))
                out.hashes[loaded.sha256] = result
                if loaded.sha256 in seen:  # byte-identical originals would make false "negatives"
                    out.errors.append(f"duplicate: {p}: same bytes as {seen[loaded.sha256]}; used once")
                    continue
                seen[loaded.sha256] = p
                originals.append(_Original(len(originals), loaded.sha256, p, group_of.get(p.resolve())))
                bits.append(result)
                keep.append(loaded.image)
            if embedder is not None and keep:
                vectors.append(np.asarray(embedder.embed_images(keep), dtype=np.float32))
    embeddings = None
    if embedder is not None and vectors:
        embeddings = np.concatenate(vectors)
        embeddings /= np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    return originals, np.array(bits, dtype=np.uint64), embeddings


def _plan_edits(n: int, seed: int, positives: int, chains: int, levels, transforms) -> list[list[_EditSpec]]:
    """Which kind at which level for every edit of every original.

    Single edits deal the kinds out like cards: edit number g = i * positives + j takes the
    (g mod K)-th kind of the (g div K)-th seeded shuffle of the K kinds, so over the whole set every
    kind is used equally often (+-1). Each kind's own uses go through ``levels`` in turn (from a
    seeded start), skipping levels that kind is not offered at (no "light" mirror or quarter turn).
    Chains go through ``levels`` in turn.
    """
    kinds = transforms.KINDS
    offered = {lv: set(transforms.kinds_for_level(lv)) for lv in levels}
    start = np.random.default_rng([seed, 7]).integers(len(levels), size=len(kinds))
    uses = dict.fromkeys(kinds, 0)
    shuffles: dict[int, np.ndarray] = {}
    chain_start = int(np.random.default_rng([seed, 8]).integers(len(levels)))
    plans = []
    for i in range(n):
        plan = []
        for j in range(positives):
            g = i * positives + j
            deal = g // len(kinds)
            if deal not in shuffles:
                shuffles[deal] = np.random.default_rng([seed, 9, deal]).permutation(len(kinds))
            k = int(shuffles[deal][g % len(kinds)])
            kind = kinds[k]
            for step in range(len(levels)):
                level = levels[(start[k] + uses[kind] + step) % len(levels)]
                if kind in offered[level]:
                    break
            else:
                level = levels[(start[k] + uses[kind]) % len(levels)]  # only levels the kind lacks: use anyway
            uses[kind] += 1
            plan.append(_EditSpec(kind, level, (seed, i, 2, j)))
        for j in range(chains):
            level = levels[(chain_start + i * chains + j) % len(levels)]
            plan.append(_EditSpec(None, level, (seed, i, 3, j)))
        plans.append(plan)
    return plans


def _make_derived(originals, plans, images_dir: Path, max_pixels, workers: int) -> list[list[_Derived]]:
    """Run every planned edit in a thread pool; results in plan order, whatever the scheduling.

    Each original is decoded once at full size (a load task), and its edits wait on that load.
    Tasks run first-in first-out, so a load always starts before the edits that need it; at most
    ``2 * workers`` originals are in flight, which bounds memory.
    """
    results: list[list[_Derived]] = [[] for _ in originals]
    window = 2 * workers
    pool = ThreadPoolExecutor(workers)
    try:
        inflight: deque = deque()
        for o, plan in zip(originals, plans):
            if not plan:
                continue
            load = pool.submit(_load_full, o, max_pixels)
            inflight.append((o.index, [pool.submit(_edit_one, load, spec, images_dir) for spec in plan]))
            if len(inflight) >= window:
                i, futures = inflight.popleft()
                results[i] = [f.result() for f in futures]
        while inflight:
            i, futures = inflight.popleft()
            results[i] = [f.result() for f in futures]
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def _load_full(original: _Original, max_pixels):
    from maya.io import images as imageio

    kw = {"min_side": None}
    if max_pixels:
        kw["max_pixels"] = max_pixels
    try:
        loaded = imageio.load_image(original.path, **kw)
    except imageio.ImageLoadError as e:
        raise PairsError(f"{original.path} could be read a moment ago but not now ({e}); run the build again") from None
    if loaded.sha256 != original.sha256:
        raise PairsError(f"{original.path} changed while the pairs were being built; run the build again")
    return _working_copy(loaded.image)


def _edit_one(load, spec: _EditSpec, images_dir: Path) -> _Derived:
    """One planned edit of a loaded original: encode, store content-addressed, pHash the stored bytes
    as the evaluate flow will decode them."""
    from maya.io import images as imageio
    from maya.hashing import phash
    from maya.pairs import transforms

    image = load.result()
    rng = np.random.default_rng(list(spec.rng_key))
    try:
        if spec.kind is None:
            v = transforms.make_chain(image, rng, spec.level)
        else:
            v = transforms.make_variant(image, spec.kind, rng, spec.level)
    except Exception as e:  # a bug in an edit: say which edit of which image, to reproduce it
        what = "a chain" if spec.kind is None else spec.kind
        raise RuntimeError(f"{what} at level {spec.level} (generator seed {list(spec.rng_key)}) failed on "
                           f"an image of {image.size[0]}x{image.size[1]}: {type(e).__name__}: {e}") from e
    sha, path = store_derived(images_dir, v.data, v.ext)
    small = imageio.decode_image(v.data, min_side=SURVEY_MIN_SIDE).image
    bits = int(phash.phash_bits([small])[0])
    return _Derived(sha, path, len(v.data), v.kind, v.params, bits)


def _semantic_rows(originals, split, seed: int, per_original: int) -> list[tuple]:
    """Positives between different originals of one group (see ``semantic_pairs_per_original``)."""
    members: dict[str, list[_Original]] = {}
    for o in originals:
        if o.group is not None:
            members.setdefault(o.group, []).append(o)
    rows = []
    for gi, (group, ms) in enumerate(members.items()):
        n = len(ms)
        if n < 2 or per_original == 0:
            continue
        cap = math.ceil(n * per_original / 2)
        if n * (n - 1) // 2 <= cap:
            chosen = [(x, y) for x in range(n) for y in range(x + 1, n)]
        else:
            # Rings over a seeded order: offset 1 gives every member two partners, offset 2 two more...
            order = np.random.default_rng([seed, 11, gi]).permutation(n)
            chosen, seen = [], set()
            for offset in range(1, per_original // 2 + 1):
                for t in range(n):
                    x, y = int(order[t]), int(order[(t + offset) % n])
                    key = (min(x, y), max(x, y))
                    if x != y and key not in seen:
                        seen.add(key)
                        chosen.append(key)
            if per_original % 2:  # an odd count: one more partner each, across the ring
                for t in range(n // 2):
                    x, y = int(order[t]), int(order[t + n // 2])
                    key = (min(x, y), max(x, y))
                    if key not in seen:
                        seen.add(key)
                        chosen.append(key)
        for x, y in chosen:
            a, b = ms[x], ms[y]
            rows.append((a.sha256, b.sha256, True, KIND_SEMANTIC, {"group": group}, split[a.index], a.sha256))
    return rows


class _NegativeMaker:
    """Negative pairs between originals of one split; never within a group or between near-duplicates.

    ``members[i]`` lists (sha256, pHash bits) of original i and its edited copies; a negative joins a
    member of one original with a member of another. Each unordered image pair is used once.
    """

    def __init__(self, originals, split, bits, members, seed: int, errors: list[str]):
        from maya.hashing import index as hash_index

        self.originals = originals
        self.split = split
        self.bits = bits
        self.members = members
        self.group = np.array([o.group if o.group is not None else f"\0{o.index}" for o in originals], dtype=object)
        self.rng = np.random.default_rng([seed, 4])
        self.rows: list[tuple] = []
        self.used: set[tuple[str, str]] = set()
        self.by_split = {s: np.flatnonzero(split == s) for s in ("val", "test")}
        i, j, d = hash_index.pairs_within(bits, NEAR_DUPLICATE_BITS)
        self.near_of: dict[int, set[int]] = {}
        for a, b, dd in zip(i.tolist(), j.tolist(), d.tolist()):
            if self.group[a] == self.group[b]:
                continue
            self.near_of.setdefault(a, set()).add(b)
            self.near_of.setdefault(b, set()).add(a)
            errors.append(f"near-duplicate originals: {originals[a].path} and {originals[b].path} "
                          f"(pHash distance {dd}); never paired as a negative")

    def allowed(self, i: int, j: int) -> bool:
        return (i != j and self.split[i] == self.split[j] and self.group[i] != self.group[j]
                and j not in self.near_of.get(i, ()))

    def _add(self, a: str, b: str, kind: str, params: dict, i: int) -> bool:
        key = (a, b) if a < b else (b, a)
        if key in self.used:
            return False
        self.used.add(key)
        o = self.originals[i]
        self.rows.append((a, b, False, kind, params, self.split[i], o.sha256))
        return True

    def _random_member(self, i: int) -> tuple[str, int]:
        ms = self.members[i]
        return ms[int(self.rng.integers(len(ms)))]

    def _neighbour_lists(self, score_rows, count: int, descending: bool) -> list[list[tuple[int, float]]]:
        """Per original, up to ``count`` allowed others, best first, as (index, score) lists.

        ``score_rows(idx)`` gives the (len(idx), N) scores of originals ``idx`` against all
        originals (pHash distances, or cosine similarities with ``descending``). Computed 256 rows
        at a time, so memory is O(256 N), not O(N^2).
        """
        n = len(self.originals)
        out = []
        for start in range(0, n, 256):
            idx = np.arange(start, min(n, start + 256))
            keys = score_rows(idx).astype(np.float64)
            if descending:
                keys = -keys
            for r, i in enumerate(idx.tolist()):
                key = keys[r]
                ok = np.flatnonzero((self.split == self.split[i]) & (self.group != self.group[i]))
                near = self.near_of.get(i, ())
                take = min(len(ok), count + len(near))
                if take < len(ok):
                    ok = ok[np.argpartition(key[ok], take - 1)[:take]]
                ok = ok[np.lexsort((ok, key[ok]))]  # by score, ties by index
                picked = [(int(j), float(-key[j] if descending else key[j])) for j in ok.tolist() if j not in near]
                out.append(picked[:count])
        return out

    def _round_robin(self, n_wanted: int, neighbours, make, descending: bool) -> int:
        """Rank by rank: every original's nearest allowed other first (the closest such pairs
        first), then every original's second nearest, and so on; each unordered pair of originals
        once per pass. ``make(i, j, rank, score)`` adds one negative and says whether it did. When a
        pass has gone through every candidate and more are wanted (few originals), another pass
        takes the next image pair of the same pairs of originals."""
        order: list[tuple[int, int, int, float]] = []
        seen: set[tuple[int, int]] = set()
        depth = max((len(nb) for nb in neighbours), default=0)
        sign = -1.0 if descending else 1.0
        for rank in range(depth):
            level = [(sign * nb[rank][1], i, nb[rank][0]) for i, nb in enumerate(neighbours) if rank < len(nb)]
            for _, i, j in sorted(level):
                key = (min(i, j), max(i, j))
                if key not in seen:
                    seen.add(key)
                    order.append((i, j, rank + 1, neighbours[i][rank][1]))
        made = 0
        while made < n_wanted:
            before = made
            for i, j, rank, score in order:
                if made >= n_wanted:
                    break
                made += make(i, j, rank, score)
            if made == before:
                break
        return made

    def _ranks(self, n_wanted: int) -> int:
        """Neighbours to look at per original: enough for ``n_wanted`` pairs, with slack for
        pairs met from both ends and image pairs already taken."""
        n = len(self.originals)
        return max(1, min(n - 1, 2 * math.ceil(n_wanted / n) + 2))

    def hard_by_phash(self, n_wanted: int) -> int:
        """Nearest originals by pHash; of their images, the closest pair in pHash not yet used."""
        if n_wanted <= 0:
            return 0
        from maya.hashing.phash import hamming

        neighbours = self._neighbour_lists(
            lambda idx: hamming(self.bits[idx][:, None], self.bits[None, :]), self._ranks(n_wanted), descending=False)

        def make(i, j, rank, dist):
            mi, mj = self.members[i], self.members[j]
            bi = np.array([b for _, b in mi], dtype=np.uint64)
            bj = np.array([b for _, b in mj], dtype=np.uint64)
            d = hamming(bi[:, None], bj[None, :]).astype(np.int64)
            for flat in np.argsort(d, axis=None, kind="stable").tolist():
                x, y = divmod(flat, len(mj))
                params = {"by": "phash", "rank": rank, "originals_distance": int(dist), "distance": int(d[x, y])}
                if self._add(mi[x][0], mj[y][0], KIND_HARD_PHASH, params, i):
                    return True
            return False

        return self._round_robin(n_wanted, neighbours, make, descending=False)

    def hard_by_embedding(self, n_wanted: int, embeddings: np.ndarray, model_id: str | None) -> int:
        """Nearest originals by cosine similarity of their embeddings; a seeded image of each."""
        if n_wanted <= 0:
            return 0
        from maya.hashing.phash import hamming

        neighbours = self._neighbour_lists(lambda idx: embeddings[idx] @ embeddings.T, self._ranks(n_wanted),
                                           descending=True)

        def make(i, j, rank, sim):
            for _ in range(8):  # a few draws, in case an image pair is taken
                (a, ba), (b, bb) = self._random_member(i), self._random_member(j)
                params = {"by": "embedding", "model": model_id, "rank": rank,
                          "originals_similarity": round(sim, 6), "distance": int(hamming(ba, bb))}
                if self._add(a, b, KIND_HARD_EMBEDDING, params, i):
                    return True
            return False

        return self._round_robin(n_wanted, neighbours, make, descending=True)

    def random(self, n_wanted: int) -> int:
        """Random pairs: an original uniformly, then another allowed one of its split uniformly."""
        from maya.hashing.phash import hamming

        made, tries = 0, 0
        # Originals with at least one allowed partner: others in the split, less its group, less near-duplicates.
        split_size = {s: len(idx) for s, idx in self.by_split.items()}
        group_size: dict = {}
        for g in self.group.tolist():
            group_size[g] = group_size.get(g, 0) + 1

        def partners(i: int) -> int:
            near = sum(self.split[j] == self.split[i] for j in self.near_of.get(i, ()))
            return split_size[self.split[i]] - group_size[self.group[i]] - near

        pool = np.array([i for i in range(len(self.originals)) if partners(i) > 0], dtype=np.int64)
        if n_wanted <= 0 or len(pool) == 0:
            return 0
        while made < n_wanted and tries < 50 * n_wanted + 100:
            tries += 1
            i = int(pool[self.rng.integers(len(pool))])
            same = self.by_split[self.split[i]]
            j = int(same[self.rng.integers(len(same))])
            if not self.allowed(i, j):
                continue
            (a, ba), (b, bb) = self._random_member(i), self._random_member(j)
            params = {"by": "random", "originals_distance": int(hamming(self.bits[i], self.bits[j])),
                      "distance": int(hamming(ba, bb))}
            made += self._add(a, b, KIND_RANDOM, params, i)
        return made


# ---------------------------------------------------------------------------------------------- import

_TRUE = {"1", "true", "yes", "y", "t", "match", "duplicate", "dup"}
_FALSE = {"0", "false", "no", "n", "f", "nomatch", "no_match", "different"}


def import_pairs(csv_path: str | Path, *, seed: int = 0, val_fraction: float = 0.5) -> PairSet:
    """Read labelled pairs from a CSV with columns ``a,b,label`` and optional ``kind``, ``split``, ``params``.

    ``a`` and ``b`` are image paths, relative to the CSV's folder (or absolute). ``label``: 1/0,
    true/false, yes/no, match/nomatch, duplicate/different. ``kind`` defaults to
    ``imported_positive`` / ``imported_negative``; ``split`` is 'val' or 'test'; ``params`` is a JSON
    object. A row with a missing or unreadable file, an empty path, a bad label, split or params is
    reported in ``errors`` (with its line number and what was wrong) and skipped; the rest are
    imported. Without a split column, splits are assigned by connected group of images (seeded),
    so one image never lands in both splits. No usable row at all is a :class:`PairsError`.
    """
    csv_path = Path(csv_path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise PairsError(f"cannot read {csv_path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise PairsError(f"{csv_path} is not UTF-8 text: is it really a CSV?") from None
    reader = csv.DictReader(text.splitlines())
    fields_ = [f.strip().lower() for f in (reader.fieldnames or []) if f is not None]
    missing = {"a", "b", "label"} - set(fields_)
    if missing:
        raise PairsError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}; "
                         f"need a,b,label[,kind][,split][,params]")
    base = csv_path.resolve().parent
    out = PairSet()
    by_path: dict[str, tuple[str | None, str | None]] = {}  # path -> (sha256, why it cannot be read)

    def sha_of(raw: str) -> tuple[str | None, str]:
        p = Path(raw)
        p = p if p.is_absolute() else base / p
        key = str(p)
        if key not in by_path:
            try:
                data = p.read_bytes()
            except IsADirectoryError:
                by_path[key] = (None, "a folder, not a file")
                out.files.append(file_record(p, None, "is_directory: a folder, not a file"))
            except OSError as e:
                reason = "missing" if isinstance(e, FileNotFoundError) else "unreadable"
                by_path[key] = (None, reason)
                out.files.append(file_record(p, None, f"{reason}: {e.strerror or e}"))
            else:
                rec = file_record(p, data)
                by_path[key] = (rec.sha256, None)
                out.files.append(rec)
        return by_path[key][0], key

    rows = []
    for lineno, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()}
        at = f"{csv_path}:{lineno}"
        label_raw = row.get("label", "").lower()
        if label_raw in _TRUE:
            label = True
        elif label_raw in _FALSE:
            label = False
        else:
            out.errors.append(f"{at}: label {row.get('label')!r} is not one of 1/0/true/false")
            continue
        split = row.get("split", "").lower() or None
        if split is not None and split not in ("val", "test"):
            out.errors.append(f"{at}: split {row.get('split')!r} must be 'val' or 'test'")
            continue
        params = None
        if row.get("params"):
            try:
                params = json.loads(row["params"])
            except json.JSONDecodeError as e:
                out.errors.append(f"{at}: params is not JSON ({e.msg})")
                continue
            if not isinstance(params, dict):
                out.errors.append(f"{at}: params must be a JSON object, not {type(params).__name__}")
                continue
        empty = [c for c in ("a", "b") if not row.get(c)]
        if empty:
            out.errors.append(f"{at}: empty path in column {', '.join(empty)}")
            continue
        a, apath = sha_of(row["a"])
        b, bpath = sha_of(row["b"])
        bad = [f"{p} ({by_path[p][1]})" for s, p in ((a, apath), (b, bpath)) if s is None]
        if bad:
            out.errors.append(f"{at}: cannot read {', '.join(bad)}")
            continue
        kind = row.get("kind") or ("imported_positive" if label else "imported_negative")
        rows.append((a, b, label, kind, split, params))
    if not rows:
        raise PairsError(f"{csv_path}: no usable rows" + (f" ({len(out.errors)} rejected)" if out.errors else ""))
    # Seeded split by connected group of images (a pair's images and their partners share a split).
    parent: dict[str, str] = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, *_ in rows:
        parent[find(a)] = find(b)
    roots = sorted({find(a) for a, *_ in rows})
    assigned = dict(zip(roots, _split_originals(len(roots), seed, val_fraction)))
    splits = [split or assigned[find(a)] for a, b, label, kind, split, params in rows]
    if len(set(splits)) < 2 and len(rows) >= 2 and not any(r[4] for r in rows):
        # One connected group holds every image: split by pair instead (images may then be shared).
        splits = list(_split_originals(len(rows), seed, val_fraction))
        out.errors.append(f"{csv_path}: all pairs are connected; split by pair, so an image may be in both splits")
    out.pairs = [
        Pair(k, a, b, label, kind, params, str(sp), find(a))
        for k, ((a, b, label, kind, _, params), sp) in enumerate(zip(rows, splits))
    ]
    return out
