"""Import labelled pairs from a CSV (``a,b,label`` with optional ``kind``, ``split``, ``params``).

Bad rows are reported with their line number and skipped; images are identified by the sha256 of
their bytes; without a split column, splits are seeded by connected group of images. The CSV is read
as a stream by the csv module (a quoted field may hold newlines), so memory grows with the rows kept,
not the file; every file it names is opened by the shared opener (``maya.io.opener``): a FIFO, a
device such as ``/dev/zero`` or a folder is reported on its row and skipped without being read.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from maya.pairs.records import Pair, PairSet, PairsError, file_record, split_units


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
    from maya.io import images as imageio

    csv_path = Path(csv_path)
    try:
        with imageio.open_text_file(csv_path) as stream:
            return _import_stream(csv_path, stream, seed, val_fraction)
    except imageio.ImageLoadError as e:
        raise PairsError(f"cannot read {csv_path}: {e.detail}") from None
    except UnicodeDecodeError:
        raise PairsError(f"{csv_path} is not UTF-8 text: is it really a CSV?") from None
    except csv.Error as e:
        raise PairsError(f"{csv_path} is not a CSV this reader understands: {e}") from None


def _import_stream(csv_path: Path, stream, seed: int, val_fraction: float) -> PairSet:
    """The rows of the open CSV ``stream``, read one record at a time (quoted newlines kept)."""
    from maya.io import images as imageio

    reader = csv.DictReader(stream)
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
            try:  # the shared opener: FIFOs, devices (/dev/zero) and folders are refused before any read
                sha = imageio.sha256_file(p)
            except imageio.ImageLoadError as e:
                why = "a folder, not a file" if e.reason == "is_directory" else e.detail
                by_path[key] = (None, why)
                out.files.append(file_record(p, None, f"{e.reason}: {why}"))
            else:
                rec = file_record(p, sha256=sha)
                by_path[key] = (rec.sha256, None)
                out.files.append(rec)
        return by_path[key][0], key

    rows = []
    line_after = reader.line_num  # physical lines read so far: a record starts on the next one
    for row in reader:
        lineno, line_after = line_after + 1, reader.line_num
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
    assigned = dict(zip(roots, split_units(len(roots), seed, val_fraction)))
    splits = [split or assigned[find(a)] for a, b, label, kind, split, params in rows]
    if len(set(splits)) < 2 and len(rows) >= 2 and not any(r[4] for r in rows):
        # One connected group holds every image: split by pair instead (images may then be shared).
        splits = list(split_units(len(rows), seed, val_fraction))
        out.errors.append(f"{csv_path}: all pairs are connected; split by pair, so an image may be in both splits")
    out.pairs = []
    for k, sp in enumerate(splits):  # each row is dropped as its Pair is made: one of the two at a time
        a, b, label, kind, _, params = rows[k]
        rows[k] = None
        out.pairs.append(Pair(k, a, b, label, kind, params, str(sp), find(a)))
    return out
