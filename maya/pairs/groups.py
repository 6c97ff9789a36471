"""Groups of originals ("different shots of the same thing") for a pair build's semantic positives.

A group comes from the sub-folders of the source, a ``path,group`` CSV, or a mapping; originals of one
group are paired as ``semantic`` positives, share a split and are never paired as negatives.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from maya.pairs.records import PairsError


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
        from maya.io import images as imageio

        entries = []
        try:
            with imageio.open_text_file(csv_path) as stream:  # the shared opener; quoted newlines kept
                reader = csv.DictReader(stream)
                names = [(f or "").strip().lower() for f in (reader.fieldnames or [])]
                if not {"path", "group"} <= set(names):
                    raise PairsError(f"{csv_path}: a groups CSV needs the columns path,group "
                                     f"(found: {', '.join(names)})")
                line_after = reader.line_num
                for row in reader:
                    lineno, line_after = line_after + 1, reader.line_num
                    row = {(k or "").strip().lower(): (v or "").strip() if isinstance(v, str) else ""
                           for k, v in row.items()}
                    entries.append((lineno, row.get("path", ""), row.get("group", "")))
        except imageio.ImageLoadError as e:
            raise PairsError(f"cannot read the groups file {csv_path}: {e.detail}") from None
        except (UnicodeDecodeError, csv.Error) as e:
            raise PairsError(f"the groups file {csv_path} is not a UTF-8 CSV: {e}") from None
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
