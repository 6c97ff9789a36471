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

Import (:func:`import_pairs`, :mod:`maya.pairs.importing`): a CSV of ``a,b,label`` with optional
``kind``, ``split``, ``params``. Negatives are :mod:`maya.pairs.negatives`, groups
:mod:`maya.pairs.groups`, the pair records :mod:`maya.pairs.records`; their public names are
importable from here. Originals are found by the one walker (:mod:`maya.io.walk`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maya.hashing import DEFAULT
from maya.pairs.groups import read_groups
from maya.pairs.importing import import_pairs
from maya.pairs.negatives import NegativeMaker
from maya.progress import Progress
from maya.pairs.records import (  # noqa: F401  (re-exported: callers import the pair vocabulary from here)
    KIND_HARD_EMBEDDING,
    KIND_HARD_PHASH,
    KIND_RANDOM,
    KIND_SEMANTIC,
    NEAR_DUPLICATE_BITS,
    NEGATIVE_KINDS,
    FileRecord,
    Pair,
    PairSet,
    PairsError,
    file_record,
    split_units,
    store_derived,
)

__all__ = ["build_pairs", "find_originals", "import_pairs", "read_groups", "PairsError", "PairSet", "Pair",
           "FileRecord", "SURVEY_MIN_SIDE", "MAX_EDIT_SIDE", "NEAR_DUPLICATE_BITS", "KIND_SEMANTIC",
           "KIND_HARD_PHASH", "KIND_HARD_EMBEDDING", "KIND_RANDOM", "NEGATIVE_KINDS", "store_derived"]

#: Originals larger than this (long side, px) are scaled down before editing, to bound time and memory.
MAX_EDIT_SIDE = 2048
#: Shorter side (px) images are decoded at for pHash and embeddings; the same as the evaluate
#: flow's decode (``maya.features.DECODE_MIN_SIDE``), so the hashes here equal the flow's.
SURVEY_MIN_SIDE = 256

_SURVEY_CHUNK = 64  # originals decoded (and embedded) at a time in the survey


def find_originals(root: str | Path, *, exclude: str | Path | None = None) -> tuple[list[Path], list]:
    """Image files under ``root`` by the one walker (:func:`maya.io.walk.walk_images`: its extension
    list, hidden files and symbolic links skipped), sorted by path for determinism, and the walk's
    problems (:class:`maya.io.walk.FileProblem`: a broken link or a FIFO named like an image).

    ``exclude``: a folder not to look into (the derived-images folder, when it lies inside ``root``:
    a second build must not take the first one's edited copies for originals).
    """
    from maya.io.walk import walk_images

    root = Path(root)
    if not root.exists():
        raise PairsError(f"no such folder: {root}")
    walk = walk_images([root], exclude=[exclude] if exclude is not None else ())
    return sorted(Path(f.path) for f in walk.files), walk.problems


def _working_copy(image):
    from PIL import Image

    w, h = image.size
    if max(w, h) > MAX_EDIT_SIDE:
        scale = MAX_EDIT_SIDE / max(w, h)
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    return image


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
    progress: bool = False,
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
        progress: show progress of reading the originals and of the edits on stderr (:mod:`maya.progress`).

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
    paths, walk_problems = find_originals(source, exclude=images_dir)
    if not paths:
        raise PairsError(f"no images found under {source}")
    out = PairSet()
    for prob in walk_problems:  # a row with its reason, as for a file that does not decode
        out.errors.append(f"{prob.path}: {prob.error}")
        out.files.append(FileRecord(prob.path, None, None, None, "error", prob.error))

    t0 = time.perf_counter()
    group_of: dict[Path, str] = {}
    if groups is not None:
        group_of, problems = read_groups(source, groups, paths)
        out.errors.extend(problems)
    originals, bits, embeddings = _survey(paths, group_of, max_pixels, embedder, workers, out, progress)
    if len(originals) < 2:
        raise PairsError(f"need at least 2 readable images under {source}, found {len(originals)}")
    out.timings["survey"] = time.perf_counter() - t0

    # Splits by unit: a group, or an original on its own.
    unit_of = [("g", o.group) if o.group is not None else ("o", o.sha256) for o in originals]
    units = list(dict.fromkeys(unit_of))  # first-appearance order
    if len(units) < 2:
        raise PairsError(f"all {len(originals)} originals under {source} are in one group: a benchmark needs "
                         f"photos of at least two different things (for negatives and for two splits)")
    unit_split = dict(zip(units, split_units(len(units), seed, val_fraction)))
    split = np.array([unit_split[u] for u in unit_of], dtype=object)

    t0 = time.perf_counter()
    plans = _plan_edits(len(originals), seed, positives_per_original, chains_per_original, levels, transforms)
    derived = _make_derived(originals, plans, images_dir, max_pixels, workers, progress)
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
    negatives = NegativeMaker(originals, split, bits, members, seed, out.errors)
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


def _survey(paths, group_of, max_pixels, embedder, workers, out: PairSet, progress: bool = False):
    """Read every file once at reduced scale: identity, pHash, embedding. Duplicates by bytes are
    used once. Returns (originals, pHash bits (N,) uint64, embeddings (N, d) float32 or None)."""
    from maya.io import images as imageio

    kw = {"min_side": SURVEY_MIN_SIDE}
    if max_pixels:
        kw["max_pixels"] = max_pixels

    def look(p: Path):
        try:
            loaded = imageio.load_image(p, **kw)
        except imageio.ImageLoadError as e:
            return p, None, e
        return p, loaded, int(DEFAULT.compute([loaded.image])[0])

    originals: list[_Original] = []
    bits: list[int] = []
    vectors: list[np.ndarray] = []
    seen: dict[str, Path] = {}
    bar = Progress(len(paths), "pairs: reading originals", progress)
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(paths), _SURVEY_CHUNK):
            keep = []
            for p, loaded, result in pool.map(look, paths[start:start + _SURVEY_CHUNK]):
                bar.update(1)
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
    bar.close()
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


def _make_derived(originals, plans, images_dir: Path, max_pixels, workers: int,
                  progress: bool = False) -> list[list[_Derived]]:
    """Run every planned edit in a thread pool; results in plan order, whatever the scheduling.

    Each original is decoded once at full size (a load task), and its edits wait on that load.
    Tasks run first-in first-out, so a load always starts before the edits that need it; at most
    ``2 * workers`` originals are in flight, which bounds memory.
    """
    results: list[list[_Derived]] = [[] for _ in originals]
    window = 2 * workers
    bar = Progress(sum(len(plan) for plan in plans), "pairs: edited copies", progress)
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
                bar.update(len(futures))
        while inflight:
            i, futures = inflight.popleft()
            results[i] = [f.result() for f in futures]
            bar.update(len(futures))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        bar.close()
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
    bits = int(DEFAULT.compute([small])[0])
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


