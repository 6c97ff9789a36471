"""Labelled pairs: build them from a folder of originals with seeded edits, or import them from CSV.

Building: each original yields edited copies (positives, kinds from :mod:`maya.transforms`) and
negatives (random pairs of different originals, and hard ones: the nearest distinct original by
pHash). Splits are by original, so no original appears in both 'val' and 'test'. Derived images are
stored once, content-addressed, under the data folder; pairs refer to images by sha256.
Same source, same seed, same parameters -> byte-identical images and identical pair rows.
"""

from __future__ import annotations

import csv
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)
#: Originals larger than this (long side, px) are scaled down before editing, to bound time and memory.
MAX_EDIT_SIDE = 2048


class PairsError(ValueError):
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
    original: str | None


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
    pairs: list[Pair] = field(default_factory=list)
    files: list[FileRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one human line per problem (row or file)

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.pairs:
            out[p.kind] = out.get(p.kind, 0) + 1
        return dict(sorted(out.items()))


def list_images(root: str | Path, *, follow_symlinks: bool = False, include_hidden: bool = False) -> list[Path]:
    """Image files under ``root`` (recursive, by extension), sorted for determinism."""
    root = Path(root)
    if not root.exists():
        raise PairsError(f"no such folder: {root}")
    if root.is_file():
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=follow_symlinks):
        if not include_hidden:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
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
    """Write ``data`` content-addressed under ``images_dir`` (atomic, once). Returns (sha256, path)."""
    sha = hashlib.sha256(data).hexdigest()
    path = images_dir / sha[:2] / f"{sha}.{ext}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return sha, path


def _split_originals(n: int, seed: int, val_fraction: float) -> np.ndarray:
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
) -> PairSet:
    """Make labelled pairs from the images under ``source``.

    Each usable original gets ``positives_per_original`` single edits (kinds cycled so every kind is
    used evenly) and ``chains_per_original`` chains of 2-3 edits. Negatives: ``negatives_per_positive``
    times as many, a ``hard_negative_fraction`` of them hard (an image derived from the nearest other
    original by pHash), the rest random; always within one split. Files that cannot be read are reported
    in ``errors`` and skipped; fewer than two usable originals is a :class:`PairsError`.
    """
    from maya import imageio, phash, transforms

    images_dir = Path(images_dir)
    paths = list_images(source)
    if not paths:
        raise PairsError(f"no images found under {source}")
    out = PairSet()
    originals = []  # (sha, path, PIL image)
    seen: set[str] = set()
    load_kw = {"min_side": 10**9}
    if max_pixels:
        load_kw["max_pixels"] = max_pixels
    for p in paths:
        try:
            loaded = imageio.load_image(p, **load_kw)
        except imageio.ImageLoadError as e:
            out.errors.append(str(e))
            out.files.append(file_record(p, None, str(e)))
            continue
        out.files.append(FileRecord(str(p), loaded.sha256, loaded.size_bytes, p.stat().st_mtime, "ok"))
        if loaded.sha256 in seen:  # byte-identical originals would make false "negatives"
            out.errors.append(f"duplicate: {p}: same bytes as an earlier original; used once")
            continue
        seen.add(loaded.sha256)
        originals.append((loaded.sha256, p, _working_copy(loaded.image)))
    if len(originals) < 2:
        raise PairsError(f"need at least 2 readable images under {source}, found {len(originals)}")

    split = _split_originals(len(originals), seed, val_fraction)
    kinds = transforms.KINDS
    derived: list[list[str]] = [[] for _ in originals]
    pairs: list[tuple] = []  # (a, b, label, kind, params, split, original)
    for i, (sha, path, img) in enumerate(originals):
        rng = np.random.default_rng([seed, i, 1])
        order = rng.permutation(len(kinds))
        offset = (i * positives_per_original) % len(kinds)
        for j in range(positives_per_original):
            kind = kinds[order[(offset + j) % len(kinds)]]
            level = levels[int(rng.integers(len(levels)))]
            v = transforms.make_variant(img, kind, np.random.default_rng([seed, i, 2, j]), level)
            dsha, dpath = store_derived(images_dir, v.data, v.ext)
            out.files.append(file_record(dpath, v.data))
            derived[i].append(dsha)
            pairs.append((sha, dsha, True, v.kind, {"level": level, **v.params}, split[i], sha))
        for j in range(chains_per_original):
            level = levels[int(rng.integers(len(levels)))]
            v = transforms.make_chain(img, np.random.default_rng([seed, i, 3, j]), level)
            dsha, dpath = store_derived(images_dir, v.data, v.ext)
            out.files.append(file_record(dpath, v.data))
            derived[i].append(dsha)
            pairs.append((sha, dsha, True, v.kind, {"level": level, **v.params}, split[i], sha))

    # Negatives, within a split only.
    n_pos = len(pairs)
    n_neg = int(round(n_pos * negatives_per_positive))
    n_hard = int(round(n_neg * hard_negative_fraction))
    bits = phash.phash_bits([img for _, _, img in originals])
    dist = phash.hamming(bits[:, None], bits[None, :]).astype(np.int64)
    np.fill_diagonal(dist, 10**6)
    rng = np.random.default_rng([seed, 4])
    groups = {s: np.flatnonzero(split == s) for s in ("val", "test")}
    members = [[o[0]] + derived[i] for i, o in enumerate(originals)]
    seen_pairs: set[tuple[str, str]] = set()

    def add_negative(i: int, j: int, kind: str, params: dict) -> bool:
        a = members[i][int(rng.integers(len(members[i])))]
        b = members[j][int(rng.integers(len(members[j])))]
        key = (min(a, b), max(a, b))
        if key in seen_pairs:
            return False
        seen_pairs.add(key)
        pairs.append((a, b, False, kind, params, split[i], originals[i][0]))
        return True

    # Hard: pair each original with its nearest neighbours (by pHash) in its own split, closest first.
    hard_candidates = []
    for s, idx in groups.items():
        if len(idx) < 2:
            continue
        sub = dist[np.ix_(idx, idx)]
        for a_local, row in enumerate(sub):
            for b_local in np.argsort(row, kind="stable")[: len(idx) - 1]:
                hard_candidates.append((int(row[b_local]), int(idx[a_local]), int(idx[b_local])))
    hard_candidates.sort()
    made = 0
    for dd, i, j in hard_candidates:
        if made >= n_hard:
            break
        made += add_negative(i, j, "hard_negative_phash", {"original_distance": dd})
    tries = 0
    eligible = [idx for idx in groups.values() if len(idx) >= 2]
    while made < n_neg and eligible and tries < 50 * max(n_neg, 1):
        tries += 1
        idx = eligible[int(rng.integers(len(eligible)))]
        i, j = rng.choice(idx, size=2, replace=False)
        made += add_negative(int(i), int(j), "random_negative", {})

    out.pairs = [
        Pair(k, a, b, bool(lab), kind, params, str(sp), orig)
        for k, (a, b, lab, kind, params, sp, orig) in enumerate(pairs)
    ]
    return out


_TRUE = {"1", "true", "yes", "y", "t", "match", "duplicate", "dup"}
_FALSE = {"0", "false", "no", "n", "f", "nomatch", "no_match", "different"}


def import_pairs(csv_path: str | Path, *, seed: int = 0, val_fraction: float = 0.5) -> PairSet:
    """Read labelled pairs from a CSV with columns ``a,b,label`` and optional ``kind``, ``split``.

    Paths are resolved against the CSV's folder. A row with a missing/unreadable file or a bad label is
    reported in ``errors`` (with its line number) and skipped; the rest are imported. Without a split
    column, splits are assigned by the ``a`` image (seeded), so one image never lands in both splits.
    """
    csv_path = Path(csv_path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise PairsError(f"cannot read {csv_path}: {e.strerror or e}") from None
    reader = csv.DictReader(text.splitlines())
    fields_ = [f.strip().lower() for f in (reader.fieldnames or [])]
    missing = {"a", "b", "label"} - set(fields_)
    if missing:
        raise PairsError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}; need a,b,label[,kind][,split]")
    base = csv_path.resolve().parent
    out = PairSet()
    by_path: dict[str, str | None] = {}

    def sha_of(raw: str) -> tuple[str | None, str | None]:
        p = Path(raw)
        p = p if p.is_absolute() else base / p
        key = str(p)
        if key not in by_path:
            try:
                data = p.read_bytes()
            except IsADirectoryError:
                by_path[key] = None
                out.files.append(file_record(p, None, "is_directory: a folder, not a file"))
            except OSError as e:
                by_path[key] = None
                reason = "missing" if isinstance(e, FileNotFoundError) else "unreadable"
                out.files.append(file_record(p, None, f"{reason}: {e.strerror or e}"))
            else:
                rec = file_record(p, data)
                by_path[key] = rec.sha256
                out.files.append(rec)
        return by_path[key], key

    rows = []
    for lineno, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        label_raw = row.get("label", "").lower()
        if label_raw in _TRUE:
            label = True
        elif label_raw in _FALSE:
            label = False
        else:
            out.errors.append(f"{csv_path}:{lineno}: label {row.get('label')!r} is not one of 1/0/true/false")
            continue
        split = row.get("split", "").lower() or None
        if split is not None and split not in ("val", "test"):
            out.errors.append(f"{csv_path}:{lineno}: split {row.get('split')!r} must be 'val' or 'test'")
            continue
        a, apath = sha_of(row["a"])
        b, bpath = sha_of(row["b"])
        bad = [p for s, p in ((a, apath), (b, bpath)) if s is None]
        if bad:
            out.errors.append(f"{csv_path}:{lineno}: cannot read {', '.join(bad)}")
            continue
        rows.append((a, b, label, row.get("kind") or ("imported_positive" if label else "imported_negative"), split))
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
    splits = [split or assigned[find(a)] for a, b, label, kind, split in rows]
    if len(set(splits)) < 2 and len(rows) >= 2 and not any(r[4] for r in rows):
        # One connected group holds every image: split by pair instead (images may then be shared).
        splits = list(_split_originals(len(rows), seed, val_fraction))
        out.errors.append(f"{csv_path}: all pairs are connected; split by pair, so an image may be in both splits")
    out.pairs = [
        Pair(k, a, b, label, kind, None, str(sp), find(a))
        for k, ((a, b, label, kind, _), sp) in enumerate(zip(rows, splits))
    ]
    return out
