"""Reads and writes of a review (``maya review``): a dedup run's groups as the page shows them, the
decisions a person makes on them (``review_decisions``), and the file actions taken from the page
(``review_actions``). The tables are in sql/review.sql; the dedup tables they refer to in sql/dedup.sql.

A member's *clause* is the part of the decision rule that admitted it: ``exact`` (same bytes as the kept
file), or the rule of the accepted pair between it and the kept file in ``dedup_pairs`` (``phash``,
``phash+clip``, ``clip``), or ``via others`` when it joined through other members (no direct pair; a
chain). Where ``dedup_members`` has a ``clause`` column of its own, that column is used instead.
"""

from __future__ import annotations

import json
from typing import Sequence

from maya.errors import MayaUsageError

DECISIONS = ("not_duplicate", "keep", "split", "group_wrong", "confirm")
#: Decisions about one member (the others are about the whole group).
MEMBER_DECISIONS = frozenset({"not_duplicate", "keep", "split"})


class ReviewError(MayaUsageError, ValueError):
    """No dedup run to review, an unknown run, group or member, or a decision that does not apply."""


def latest_dedup_run(con) -> int | None:
    """The newest dedup run that finished (has its ``dedup_runs`` row), or None."""
    row = con.execute("SELECT max(run_id) FROM dedup_runs").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def read_run(con, run_id: int | None = None) -> dict:
    """The run (``run_id``, or the latest) with its groups and members, in the order dedup reported them.

    Returns ``{"run_id", "mode", "model", "roots", "started_at", "options", "groups": [{"group_id",
    "keep_path", "files", "images", "chained", "split", "weakest_link", "members": [{"path", "sha256",
    "keep", "phash_distance", "clip_similarity", "exact", "clause", "size_bytes", "width", "height"}]}]}``;
    members: the kept file first, then as dedup listed them (closest first). Raises :class:`ReviewError`.
    """
    if run_id is None:
        run_id = latest_dedup_run(con)
        if run_id is None:
            raise ReviewError("no dedup run in this data dir: run `maya dedup DIR` first")
    info = con.execute(
        "SELECT d.run_id, d.mode, r.model, d.roots, r.started_at, r.parameters FROM dedup_runs d "
        "JOIN runs r USING (run_id) WHERE d.run_id = ?", [run_id]).fetchone()
    if info is None:
        known = [str(r[0]) for r in con.execute("SELECT run_id FROM dedup_runs ORDER BY run_id").fetchall()]
        raise ReviewError(f"no dedup run {run_id}; dedup runs here: {', '.join(known) or 'none'}")
    params = json.loads(info[5]) if info[5] else {}
    groups = {}
    for g in con.execute(
            "SELECT group_id, keep_path, files, images, chained, split, weakest_a, weakest_b, "
            "weakest_phash_distance, weakest_clip_similarity FROM dedup_groups WHERE run_id = ? ORDER BY group_id",
            [run_id]).fetchall():
        link = None if g[6] is None else {"a": g[6], "b": g[7], "phash_distance": g[8], "clip_similarity": g[9]}
        groups[g[0]] = {"group_id": g[0], "keep_path": g[1], "files": g[2], "images": g[3], "chained": bool(g[4]),
                        "split": bool(g[5]), "weakest_link": link, "members": []}
    own_clause = "clause" in {r[0] for r in con.execute("DESCRIBE dedup_members").fetchall()}
    clause = "m.clause" if own_clause else (
        "CASE WHEN m.keep OR m.sha256 = k.sha256 THEN 'exact' ELSE coalesce(p.rule, 'via others') END")
    rows = con.execute(
        f"""
        SELECT m.group_id, m.path, m.sha256, m.keep, m.phash_distance, m.clip_similarity, m.exact,
               {clause} AS clause, f.size_bytes, i.width, i.height
        FROM dedup_members m
        JOIN dedup_members k ON k.run_id = m.run_id AND k.group_id = m.group_id AND k.keep
        LEFT JOIN dedup_pairs p ON p.run_id = m.run_id AND p.a = least(m.sha256, k.sha256)
                               AND p.b = greatest(m.sha256, k.sha256)
        LEFT JOIN files f ON f.path = m.path
        LEFT JOIN images i ON i.sha256 = m.sha256
        WHERE m.run_id = ?
        ORDER BY m.group_id, m.keep DESC, m.phash_distance, m.clip_similarity DESC NULLS LAST, m.path
        """, [run_id]).fetchall()
    for r in rows:
        groups[r[0]]["members"].append({
            "path": r[1], "sha256": r[2], "keep": bool(r[3]), "phash_distance": r[4],
            "clip_similarity": None if r[5] is None else float(r[5]), "exact": bool(r[6]),
            "clause": "kept" if r[3] else r[7], "size_bytes": r[8], "width": r[9], "height": r[10]})
    return {"run_id": info[0], "mode": info[1], "model": info[2], "roots": json.loads(info[3]) if info[3] else [],
            "started_at": str(info[4]), "options": params, "groups": list(groups.values())}


def add_decision(con, run_id: int, group_id: int, decision: str, sha256s: Sequence[str],
                 paths: Sequence[str]) -> dict:
    """Record one decision now; returns its row (see :func:`read_decisions`)."""
    if decision not in DECISIONS:
        raise ReviewError(f"unknown decision {decision!r}; one of {', '.join(DECISIONS)}")
    row = con.execute(
        "INSERT INTO review_decisions (run_id, group_id, decision, sha256s, paths) VALUES (?, ?, ?, ?, ?) "
        "RETURNING decision_id, run_id, group_id, decision, sha256s, paths, decided_at, withdrawn_at",
        [run_id, group_id, decision, list(sha256s), list(paths)]).fetchone()
    return _decision(row)


def withdraw_decision(con, run_id: int, decision_id: int) -> bool:
    """Mark a decision taken back (it stays in the log). False when there is no such decision in force."""
    row = con.execute(
        "UPDATE review_decisions SET withdrawn_at = current_timestamp "
        "WHERE run_id = ? AND decision_id = ? AND withdrawn_at IS NULL RETURNING decision_id",
        [run_id, decision_id]).fetchone()
    return row is not None


def read_decisions(con, run_id: int, *, in_force: bool = True) -> list[dict]:
    """The run's decisions, oldest first: ``{"decision_id", "run_id", "group_id", "decision", "sha256s",
    "paths", "decided_at", "withdrawn_at"}``; with ``in_force`` only those not withdrawn."""
    where = " AND withdrawn_at IS NULL" if in_force else ""
    rows = con.execute(
        "SELECT decision_id, run_id, group_id, decision, sha256s, paths, decided_at, withdrawn_at "
        f"FROM review_decisions WHERE run_id = ?{where} ORDER BY decided_at, decision_id", [run_id]).fetchall()
    return [_decision(r) for r in rows]


def _decision(r) -> dict:
    return {"decision_id": r[0], "run_id": r[1], "group_id": r[2], "decision": r[3], "sha256s": list(r[4]),
            "paths": list(r[5]), "decided_at": str(r[6]), "withdrawn_at": None if r[7] is None else str(r[7])}


def add_action(con, run_id: int, kind: str, manifest: str, files: int, done: int) -> int:
    return con.execute(
        "INSERT INTO review_actions (run_id, kind, manifest, files, done) VALUES (?, ?, ?, ?, ?) "
        "RETURNING action_id", [run_id, kind, manifest, files, done]).fetchone()[0]


def mark_undone(con, action_id: int, restored: int) -> None:
    con.execute("UPDATE review_actions SET undone_at = current_timestamp, restored = ? WHERE action_id = ?",
                [restored, action_id])


def read_actions(con, run_id: int) -> list[dict]:
    """The run's file actions, newest first."""
    rows = con.execute(
        "SELECT action_id, kind, manifest, files, done, acted_at, undone_at, restored FROM review_actions "
        "WHERE run_id = ? ORDER BY action_id DESC", [run_id]).fetchall()
    return [{"action_id": r[0], "kind": r[1], "manifest": r[2], "files": r[3], "done": r[4],
             "acted_at": str(r[5]), "undone_at": None if r[6] is None else str(r[6]), "restored": r[7]}
            for r in rows]
