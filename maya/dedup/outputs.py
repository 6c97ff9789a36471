"""Step 7 of dedup: the report (a JSON-ready dict) and the files a user asked for (JSON, CSV, HTML).

The report (also the JSON of ``maya dedup --json``)::

    {"groups": [{"keep": path,
                 "members": [{"path": ..., "sha256": ..., "phash_distance": int,
                              "clip_similarity": float | None, "exact": bool, "clause": str,
                              "views": str}, ...],
                 "chained": bool, "weakest_link": {...} | None}, ...],
     "errors": [{"path": ..., "error": "<reason>: <detail>"}, ...]}

``members`` lists every file of the group, the kept one first (distance 0 to itself); scores are to
the kept file. ``exact``: byte-identical to another member. ``clip_similarity`` is None when no
embedding model was used (``--mode phash``); both scores are over the best pair of views, and
``views`` says which views reached the deciding one (``maya.dedup.groups.Member.views``). ``chained``/``weakest_link``: see ``maya.dedup.grouping`` (the link is reported for groups of three or
more distinct images, else None).
Paths are exactly as the walk produced them.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from maya.dedup.groups import DuplicateGroup
from maya.io import ingest
from maya.io.atomic import write_atomically


def build_report(groups: Sequence[DuplicateGroup], errors: Sequence[ingest.FileProblem]) -> dict:
    """The JSON-ready report (see the module docstring)."""
    return {
        "groups": [
            {
                "keep": g.keep.path,
                "keep_reason": g.keep_reason,
                "members": [{"path": m.path, "sha256": m.sha256, "phash_distance": m.phash_distance,
                             "clip_similarity": m.clip_similarity, "exact": m.exact, "clause": m.clause,
                             "views": m.views}
                            for m in g.members],
                "chained": g.chained,
                "weakest_link": g.weakest_link,
            }
            for g in groups
        ],
        "errors": [{"path": e.path, "error": e.error} for e in errors],
    }


#: Groups with more files than this are "large": like chained groups, never acted on by ``--yes`` unless
#: asked (``--include-chained``), since one wrong edge can pull many distinct pictures into one group.
LARGE_GROUP_FILES = 50


def held_back(group: dict) -> str | None:
    """Why a report group is not acted on unless asked (``"chained"``, ``"large (N files)"``), or None."""
    if group.get("chained"):
        return "chained"
    if len(group["members"]) > LARGE_GROUP_FILES:
        return f"large ({len(group['members'])} files)"
    return None


def actionable(report: dict, include_risky: bool = False) -> tuple[dict, list[tuple[dict, str]]]:
    """The report limited to the groups ``--move-to`` / ``--link`` may act on, and the groups held back
    with the reason (none when ``include_risky``)."""
    if include_risky:
        return report, []
    keep, held = [], []
    for g in report["groups"]:
        why = held_back(g)
        (held.append((g, why)) if why else keep.append(g))
    return {**report, "groups": keep}, held


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
