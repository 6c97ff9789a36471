"""What a dedup group becomes once a person's review decisions are applied, and what follows from it:
the order the page shows groups in (risk first), the files an action may move, and labelled pairs.

A group (``maya.store.review.read_run``) lists its members, the kept file first. The decisions in force
(``review_decisions`` rows, oldest first) change it like this:

* ``group_wrong``: none of the members is a duplicate of the kept file. Nothing in the group is acted on;
  every other decision in the group is ignored while this one stands.
* ``split`` at member m: the group is two groups from m on (in the page's order); several splits make
  several parts. Each part keeps its own file.
* ``keep`` m: m is kept instead, in the part it belongs to (the latest such decision in a part wins). A part
  with no ``keep`` decision keeps the dedup's kept file (part 1) or its first member that is not rejected.
* ``not_duplicate`` m: m is not a duplicate of its part's kept file: it stays where it is.
* ``confirm``: the group was looked at and is right as it stands.

A group with at least one decision in force is *reviewed*; only reviewed groups are acted on or taught.
Pure functions over plain dicts: no database, no files (except :func:`disk_path`, which looks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass
class GroupState:
    """A group after its decisions. ``parts``: lists of member dicts, each part's kept member first, rejected
    members left out; ``rejected``: paths; ``keeps``: paths named by ``keep`` decisions, oldest first."""

    group_id: int
    reviewed: bool = False
    wrong: bool = False
    confirmed: bool = False
    keeps: list[str] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)
    splits: list[str] = field(default_factory=list)
    parts: list[list[dict]] = field(default_factory=list)
    kept_for: dict[str, dict] = field(default_factory=dict)  # path (rejected ones too) -> its part's kept member


def risk(group: dict) -> dict:
    """Why a group deserves a look first: ``{"chained": bool, "model_only": members admitted by the model
    alone (clause 'clip', or 'clip-majority': a vote of the group), "files": members}``."""
    return {"chained": bool(group.get("chained")),
            "model_only": sum(1 for m in group["members"] if m.get("clause") in ("clip", "clip-majority")),
            "files": len(group["members"])}


def risk_order(groups: list[dict]) -> list[dict]:
    """Groups riskiest first: chained ones, then those with model-only members (more first), then larger
    groups; ties in the dedup's own order (group id)."""
    def key(g):
        r = risk(g)
        return (not r["chained"], -r["model_only"], -r["files"], g["group_id"])

    return sorted(groups, key=key)


def group_state(group: dict, decisions: list[dict]) -> GroupState:
    """Apply the decisions in force about ``group`` (others are ignored), oldest first."""
    st = GroupState(group["group_id"])
    members = group["members"]
    paths = [m["path"] for m in members]
    for d in decisions:
        if d["group_id"] != group["group_id"]:
            continue
        st.reviewed = True
        path = d["paths"][0] if d["paths"] else None
        kind = d["decision"]
        if kind == "group_wrong":
            st.wrong = True
        elif kind == "confirm":
            st.confirmed = True
        elif path not in paths:
            continue  # about a file that is not in this group: nothing to apply
        elif kind == "keep":
            st.keeps.append(path)
        elif kind == "not_duplicate":
            st.rejected.add(path)
        elif kind == "split" and path != paths[0] and path not in st.splits:
            st.splits.append(path)
    cuts = sorted(paths.index(p) for p in st.splits)
    bounds = [0, *cuts, len(members)]
    for lo, hi in zip(bounds, bounds[1:]):
        part = [m for m in members[lo:hi] if m["path"] not in st.rejected]
        if not part:
            continue
        named = {m["path"]: m for m in part}
        chosen = next((named[p] for p in reversed(st.keeps) if p in named), part[0])
        st.parts.append([chosen] + [m for m in part if m is not chosen])
        st.kept_for.update((m["path"], chosen) for m in members[lo:hi])
    return st


def check_decision(group: dict, state: GroupState, decision: str, path: str | None) -> str | None:
    """Why ``decision`` about ``path`` cannot be made in ``group`` as it stands, or None."""
    paths = [m["path"] for m in group["members"]]
    if decision in ("not_duplicate", "keep", "split"):
        if path not in paths:
            return "that file is not a member of this group"
        kept = {part[0]["path"] for part in state.parts}
        if decision == "not_duplicate" and path in kept:
            return "this is the kept file: choose another file to keep first"
        if decision == "keep" and path in state.rejected:
            return "this file is marked 'not a duplicate': take that back first"
        if decision == "split" and path == paths[0]:
            return "a group cannot be split before its first member"
    return None


def action_report(groups: list[dict], decisions: list[dict]) -> dict:
    """The report (the ``maya dedup --json`` structure, ``maya.dedup.outputs``) of what may be acted on: one
    group per part of every reviewed group that is not wrong, with its kept file first and its rejected
    members left out. Paths are the files' real names (:func:`disk_path`)."""
    out = []
    for g in groups:
        st = group_state(g, decisions)
        if not st.reviewed or st.wrong:
            continue
        for part in st.parts:
            if len(part) < 2:
                continue
            out.append({"keep": disk_path(part[0]["path"]), "group_id": g["group_id"],
                        "members": [{"path": disk_path(m["path"]), "sha256": m["sha256"]} for m in part]})
    return {"groups": out, "errors": []}


def review_pairs(groups: list[dict], decisions: list[dict]) -> tuple[list[tuple], list[str]]:
    """Labelled pairs implied by the decisions: ``(a_sha, b_sha, label, group_id, why)`` per pair, a < b,
    plus notes.

    Positives: each part's kept file with every member of the part that is not rejected. Negatives: each
    rejected member with its part's kept file; the kept files of the parts of a split group with each other;
    and, for a wrong group, its kept file with every member. Pairs of byte-identical files are left out
    (nothing to learn); a pair that two groups label differently is left out with a note.
    """
    by_pair: dict[tuple[str, str], tuple] = {}
    notes: list[str] = []
    conflicts: set[tuple[str, str]] = set()

    def add(x: dict, y: dict, label: bool, gid: int, why: str):
        a, b = sorted((x["sha256"], y["sha256"]))
        if a == b:
            return
        old = by_pair.get((a, b))
        if old is not None and old[2] != label:
            conflicts.add((a, b))
        by_pair.setdefault((a, b), (a, b, label, gid, why))

    for g in groups:
        st = group_state(g, decisions)
        if not st.reviewed:
            continue
        members = g["members"]
        if st.wrong:
            for m in members[1:]:
                add(members[0], m, False, g["group_id"], "group_wrong")
            continue
        for part in st.parts:
            for m in part[1:]:
                add(part[0], m, True, g["group_id"], "confirmed")
        for m in members:
            if m["path"] in st.rejected:
                owner = st.kept_for.get(m["path"]) or (st.parts[0][0] if st.parts else members[0])
                add(owner, m, False, g["group_id"], "not_duplicate")
        for part in st.parts[1:]:
            add(st.parts[0][0], part[0], False, g["group_id"], "split")
    for a, b in sorted(conflicts):
        notes.append(f"pair {a[:12]}…/{b[:12]}… is labelled both ways by different groups: left out")
        del by_pair[(a, b)]
    return list(by_pair.values()), notes




def disk_path(stored: str) -> str:
    """The file name a stored path stands for: the store writes paths losslessly as text
    (:func:`maya.io.pathtext.path_text`: backslashes doubled, bytes that are not UTF-8 as escapes), and this is
    its inverse. A text that names an existing file as it is (older stores, or a name without escapes) is
    kept as it is."""
    from maya.io.pathtext import text_path

    if os.path.lexists(stored):
        return stored
    raw = text_path(stored)
    return raw if os.path.lexists(raw) else stored
