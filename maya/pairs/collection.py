"""A collection benchmark: a pair dataset's originals and their edited copies laid out as one folder of files.

Pairs measure a decision on a balanced set (about one negative per positive). A folder is not balanced:
with N files there are N^2 / 2 file pairs and only a few of them are copies of one picture, so the product
(``maya dedup``) is judged on a *collection*: every original of a built dataset (``maya pairs build``) plus
each of its edited copies (the dataset's positive pairs: single edits and chains at every level), written
as ordinary files, with the truth in DuckDB (``collection_files``: which original each file is a copy of,
and the semantic group of the original, if any). ``maya.evaluation.collection`` runs dedup over the folder
and scores its groups against this truth.

Layout under ``dest`` (the CLI uses ``<data-dir>/collections/<dataset>``)::

    <original file name>                      the original's bytes, as in the source folder
    edits/<stem>-<nn>-<kind>.<ext>            an edited copy (nn: 01.., kind: the edit, 'chain' for chains)

File names carry no hint a dedup engine could use beyond what a user's own folder would (dedup reads
pixels, not names). Nothing is written outside ``dest``; an existing ``dest`` is replaced only with
``replace=True``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from maya.pairs.records import KIND_SEMANTIC, PairsError


@dataclass(frozen=True)
class Collection:
    """What was laid out: the folder, its files and originals, files per kind."""

    dataset: str
    root: Path
    files: int
    originals: int
    kinds: dict[str, int]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)[:60] or "x"


def edit_family(kind: str) -> str:
    """The kind a collection file is reported under: ``chain:a+b`` -> ``chain``; others as they are."""
    return "chain" if kind.startswith("chain:") else kind


def _semantic_groups(rows) -> dict[str, str]:
    """Original sha256 -> a group name (the smallest member sha256) joining semantic pairs (union-find)."""
    parent: dict[str, str] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in rows:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


def lay_out_collection(con, dataset: str, dest: str | Path, *, replace: bool = False) -> Collection:
    """Write ``dataset``'s originals and edited copies under ``dest`` and store the truth (one transaction).

    Raises :class:`PairsError` for an unknown dataset, one without edited copies (an imported CSV has no
    originals), a file of the dataset that is gone, or an existing ``dest`` without ``replace``.
    """
    from maya import store
    from maya.io.ingest import path_text

    dest = Path(os.path.abspath(dest))  # absolute, not resolved: the paths dedup's walker will report
    rows = con.execute(
        "SELECT a, b, kind, split, original FROM pairs WHERE dataset = ? AND label ORDER BY pair_id", [dataset]
    ).fetchall()
    if not rows:
        raise PairsError(f"dataset {dataset!r} has no positive pairs to lay out as a collection")
    semantic = _semantic_groups([(a, b) for a, b, kind, _, _ in rows if kind == KIND_SEMANTIC])
    copies: dict[str, list[tuple[str, str]]] = {}
    split_of: dict[str, str] = {}
    for a, b, kind, split, original in rows:
        if kind == KIND_SEMANTIC:
            continue
        original = original or a
        split_of.setdefault(original, split)
        lst = copies.setdefault(original, [])
        if b != original and all(b != s for s, _ in lst):
            lst.append((b, kind))
    if not copies:
        raise PairsError(f"dataset {dataset!r} has no edited copies (only semantic pairs)")
    wanted = list(copies) + [b for lst in copies.values() for b, _ in lst]
    paths = _source_paths(con, wanted, dest)
    missing = [s for s in wanted if s not in paths]
    if missing:
        raise PairsError(f"dataset {dataset!r}: {len(missing)} image(s) have no readable file (first: {missing[0]}); "
                         "rebuild it with `maya pairs build --replace`")
    if dest.exists():
        if not replace:
            raise PairsError(f"{dest} exists; pass --replace to lay the collection out again")
        shutil.rmtree(dest)
    (dest / "edits").mkdir(parents=True)
    truth: list[tuple] = []
    used: set[str] = set()
    for original, lst in copies.items():
        src = Path(paths[original])
        name = src.name
        while name in used:  # two originals with one file name in different source folders
            name = f"{src.stem}-{original[:8]}{src.suffix}"
        used.add(name)
        target = dest / name
        shutil.copyfile(src, target)
        group = semantic.get(original)
        truth.append((str(target), original, original, group, "original", split_of[original]))
        for n, (sha, kind) in enumerate(lst, start=1):
            p = Path(paths[sha])
            family = edit_family(kind)
            target = dest / "edits" / f"{_safe(Path(name).stem)}-{n:02d}-{_safe(family)}{p.suffix}"
            shutil.copyfile(p, target)
            truth.append((str(target), sha, original, group, family, split_of[original]))
    with store.transaction(con):
        con.execute("DELETE FROM collection_files WHERE dataset = ?", [dataset])
        con.executemany(
            "INSERT INTO collection_files (dataset, path, sha256, original, semantic_group, kind, split) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", [(dataset, path_text(p), *rest) for p, *rest in truth])
        params = con.execute("SELECT params FROM datasets WHERE name = ?", [dataset]).fetchone()
        if params is not None:
            merged = {**json.loads(params[0] or "{}"), "collection": str(dest)}
            con.execute("UPDATE datasets SET params = ? WHERE name = ?", [json.dumps(merged, sort_keys=True), dataset])
    kinds: dict[str, int] = {}
    for row in truth:
        kinds[row[4]] = kinds.get(row[4], 0) + 1
    return Collection(dataset, dest, len(truth), len(copies), kinds)


def _source_paths(con, shas, dest: Path) -> dict[str, str]:
    """A file to copy for each sha256: the newest seen one that still exists outside ``dest`` (a dedup run
    over an earlier layout records the collection's own files too)."""
    import numpy as np

    _maya_q = {"sha256": np.array(sorted(set(shas)), dtype=object)}  # noqa: F841
    rows = con.execute("SELECT sha256, path FROM files JOIN _maya_q USING (sha256) WHERE status = 'ok' "
                       "ORDER BY seen_at DESC").fetchall()
    inside = str(dest) + os.sep
    out: dict[str, str] = {}
    for sha, path in rows:
        if sha not in out and not path.startswith(inside) and os.path.isfile(path):
            out[sha] = path
    return out


def collection_root(con, dataset: str) -> Path | None:
    """The folder ``dataset``'s collection was laid out in, or None when it has none."""
    row = con.execute("SELECT min(path) FROM collection_files WHERE dataset = ? AND kind = 'original'",
                      [dataset]).fetchone()
    if row is None or row[0] is None:
        return None
    return Path(row[0]).parent
