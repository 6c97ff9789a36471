"""Labelled pairs from a person's review of a dedup run (``maya pairs import --from-review``).

What the decisions imply is in ``maya.review.state.review_pairs``: each reviewed group's kept file with
every member the person left in (positive), with every member marked "not a duplicate" (negative), the kept
files of the parts of a split group with each other (negative), and a wrong group's kept file with each of
its members (negative). Every pair has kind ``review`` and params ``{"run_id", "group_id", "why"}``.

Splits: by group, seeded (a group's pairs are all 'val' or all 'test', so an image is never in both), as
``import_pairs`` does for the connected groups of a CSV; with a single reviewed group, by pair.

The files: each image must be readable where ``maya evaluate`` will look (``maya.store.image_paths``: the
latest ``files`` row with that content). A file moved by the review page sits at its backup path, so every
content is located again now (its member paths, then the backups of the run's actions) and recorded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from maya.pairs.records import Pair, PairsError, PairSet, file_record, split_units

KIND = "review"


def pairs_from_review(con, run_id: int | None = None, *, seed: int = 0, val_fraction: float = 0.5) -> tuple[int, PairSet]:
    """(run id, the pairs its review decisions imply). Raises :class:`PairsError` when the run has no
    decision, or the decisions imply no pair."""
    from maya.review.state import disk_path, review_pairs
    from maya.store import review as review_store

    try:
        run = review_store.read_run(con, run_id)
    except review_store.ReviewError as e:
        raise PairsError(str(e)) from None
    run_id = run["run_id"]
    decisions = review_store.read_decisions(con, run_id)
    if not decisions:
        raise PairsError(f"dedup run {run_id} has no review decisions: make some with `maya review --run {run_id}`")
    rows, notes = review_pairs(run["groups"], decisions)
    out = PairSet(errors=list(notes))
    if not rows:
        raise PairsError(f"the review decisions of dedup run {run_id} imply no pair of different images")

    # where each content can be read now
    candidates: dict[str, list[str]] = {}
    for g in run["groups"]:
        for m in g["members"]:
            candidates.setdefault(m["sha256"], []).append(disk_path(m["path"]))
    for a in review_store.read_actions(con, run_id):
        for act in _manifest_actions(a["manifest"]):
            candidates.setdefault(act.get("sha256"), []).append(act.get("backup"))
    located: dict[str, str | None] = {}
    for sha in {s for r in rows for s in r[:2]}:
        located[sha] = None
        for path in candidates.get(sha, []):
            try:
                data = Path(path).read_bytes()
            except (OSError, TypeError):
                continue
            if hashlib.sha256(data).hexdigest() == sha:
                located[sha] = path
                out.files.append(file_record(Path(path), data))
                break
    missing = {s for s, p in located.items() if p is None}
    if missing:
        out.errors.append(f"{len(missing)} image(s) of the review cannot be read any more (moved or changed "
                          f"outside Maya): their pairs are left out")
        rows = [r for r in rows if r[0] not in missing and r[1] not in missing]
        if not rows:
            raise PairsError(f"no image of the review of dedup run {run_id} can be read now")

    group_ids = sorted({r[3] for r in rows})
    by_group = dict(zip(group_ids, split_units(len(group_ids), seed, val_fraction)))
    splits = [by_group[r[3]] for r in rows]
    if len(group_ids) < 2 and len(rows) >= 2:
        splits = list(split_units(len(rows), seed, val_fraction))
        out.errors.append("all decisions are about one group: split by pair, so an image may be in both splits")
    first_of_group = {}
    for g in run["groups"]:
        first_of_group[g["group_id"]] = g["members"][0]["sha256"]
    out.pairs = [Pair(k, a, b, label, KIND, {"run_id": run_id, "group_id": gid, "why": why}, str(sp),
                      first_of_group.get(gid))
                 for k, ((a, b, label, gid, why), sp) in enumerate(zip(rows, splits))]
    return run_id, out


def _manifest_actions(path: str) -> list[dict]:
    try:
        with open(path, encoding="ascii") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return []
    acts = data.get("actions") if isinstance(data, dict) else None
    return [a for a in acts or [] if isinstance(a, dict)]


def review_source(run_id: int) -> str:
    """The ``datasets.source`` text of a dataset imported from a review."""
    return f"review of dedup run {run_id}"

