"""One review of one dedup run: the groups as the page shows them, decisions, previews, and file actions.

Everything the page can do goes through a :class:`ReviewSession` (``maya.review.server`` only turns HTTP
into these calls), so it works and is tested without a browser. The run's groups and members are read
once at start (a finished run does not change); decisions and actions are written to the store as they
are made, each in its own short connection, so another ``maya`` command can use the data dir between
clicks (DuckDB allows one writing process at a time). A lock keeps this process's own requests in line.

Files are only ever read from the paths the run recorded (and, for a file the page moved, from the backup
path of its undo manifest): a request names a group and a member's position, never a path. Moving and
linking use ``maya.dedup.actions`` (the checks and undo manifests of ``maya dedup --move-to/--link``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

from maya.review import state as review_state
from maya.store import review as review_store

#: Longest side of a thumbnail, and of a "full size" view (larger images are scaled down to it), pixels.
THUMB_SIDE = 240
FULL_SIDE = 4096
#: Encoded previews kept in memory (about 15 KB per thumbnail).
PREVIEW_CACHE = 1024


class ReviewSession:
    """The state of one ``maya review``. ``db_path``: the store; ``run_id``: None for the latest dedup run;
    ``move_to``: where moved (and, for links, replaced) files go."""

    def __init__(self, db_path: str | os.PathLike, run_id: int | None, move_to: str | os.PathLike):
        from maya import store

        self.db_path = Path(db_path)
        if not self.db_path.exists():
            raise review_store.ReviewError(f"no database at {self.db_path}: run `maya dedup DIR` first")
        self.move_to = os.path.abspath(move_to)
        self._lock = threading.Lock()
        con = store.connect(self.db_path)  # applies sql/review.sql once
        try:
            self.run = review_store.read_run(con, run_id)
        finally:
            con.close()
        self.run_id = self.run["run_id"]
        self.groups = {g["group_id"]: g for g in self.run["groups"]}
        self.order = [g["group_id"] for g in review_state.risk_order(self.run["groups"])]
        self._previews: OrderedDict = OrderedDict()
        self._plans: dict[str, list] = {}

    @contextmanager
    def _store(self):
        import duckdb

        from maya import store

        with self._lock:
            try:
                con = duckdb.connect(str(self.db_path))
            except duckdb.IOException as e:  # another process writes it now (DuckDB: one writing process)
                if "lock" in str(e).lower():
                    raise store.StoreLockedError(store._lock_message(self.db_path, e)) from None
                raise store.StoreError(f"cannot open the database {self.db_path}: {e}") from None
            try:
                yield con
            finally:
                con.close()

    # ------------------------------------------------------------------------------------------ reading

    def snapshot(self) -> dict:
        """Everything the page shows: the run, the groups riskiest first (with their decisions), actions."""
        with self._store() as con:
            decisions = review_store.read_decisions(con, self.run_id)
            actions = review_store.read_actions(con, self.run_id)
        moved = self._moved(actions)
        run = {k: v for k, v in self.run.items() if k != "groups"}
        return {"run": run, "move_to": self.move_to, "actions": actions,
                "groups": [self._group_view(self.groups[g], decisions, moved, k) for k, g in enumerate(self.order)]}

    def group(self, group_id: int) -> dict:
        with self._store() as con:
            decisions = review_store.read_decisions(con, self.run_id)
            actions = review_store.read_actions(con, self.run_id)
        return self._group_view(self._group(group_id), decisions, self._moved(actions), self.order.index(group_id))

    def _group(self, group_id: int) -> dict:
        g = self.groups.get(group_id)
        if g is None:
            raise review_store.ReviewError(f"run {self.run_id} has no group {group_id}")
        return g

    def _group_view(self, g: dict, decisions: list[dict], moved: dict, position: int) -> dict:
        st = review_state.group_state(g, decisions)
        mine = [d for d in decisions if d["group_id"] == g["group_id"]]
        members = [{**m, "index": k, "name": os.path.basename(m["path"]), "moved_to": moved.get(m["path"])}
                    for k, m in enumerate(g["members"])]
        return {
            "group_id": g["group_id"], "position": position, "risk": review_state.risk(g),
            "weakest_link": g["weakest_link"], "members": members,
            "reclaimable_bytes": sum(m["size_bytes"] or 0 for m in g["members"][1:]),
            "state": {"reviewed": st.reviewed, "wrong": st.wrong, "confirmed": st.confirmed,
                      "kept": [part[0]["path"] for part in st.parts] if not st.wrong else [g["members"][0]["path"]],
                      "rejected": sorted(st.rejected), "splits": st.splits},
            "decisions": [{"decision_id": d["decision_id"], "decision": d["decision"],
                           "path": d["paths"][0] if d["paths"] else None} for d in mine],
        }

    # ------------------------------------------------------------------------------------------ decisions

    def decisions_in_force(self) -> int:
        with self._store() as con:
            return len(review_store.read_decisions(con, self.run_id))

    def decide(self, group_id: int, decision: str, path: str | None = None, *, withdraw: bool = False) -> dict:
        """Record ``decision`` (about member ``path`` for per-member decisions), or with ``withdraw`` take
        back every decision in force of that kind about that member; returns the group as the page shows it."""
        g = self._group(group_id)
        if decision not in review_store.DECISIONS:
            raise review_store.ReviewError(f"unknown decision {decision!r}")
        per_member = decision in review_store.MEMBER_DECISIONS
        if per_member and path is None:
            raise review_store.ReviewError(f"'{decision}' is about one member: name it")
        member = next((m for m in g["members"] if m["path"] == path), None) if per_member else None
        if per_member and member is None:
            raise review_store.ReviewError("that file is not a member of this group")
        with self._store() as con:
            decisions = review_store.read_decisions(con, self.run_id)
            if withdraw:
                for d in decisions:
                    if d["group_id"] == group_id and d["decision"] == decision and (
                            not per_member or (d["paths"] and d["paths"][0] == path)):
                        review_store.withdraw_decision(con, self.run_id, d["decision_id"])
            else:
                why = review_state.check_decision(g, review_state.group_state(g, decisions), decision, path)
                if why:
                    raise review_store.ReviewError(why)
                if decision == "keep":  # "keep this one instead" replaces the earlier choice in its part
                    st = review_state.group_state(g, decisions)
                    part = next((p for p in st.parts if any(m["path"] == path for m in p)), [])
                    for d in decisions:
                        if (d["group_id"] == group_id and d["decision"] == "keep" and d["paths"]
                                and any(m["path"] == d["paths"][0] for m in part)):
                            review_store.withdraw_decision(con, self.run_id, d["decision_id"])
                review_store.add_decision(con, self.run_id, group_id, decision,
                                          [member["sha256"]] if member else [], [path] if member else [])
        return self.group(group_id)

    # ------------------------------------------------------------------------------------------ previews

    def preview(self, group_id: int, index: int, *, full: bool = False) -> bytes | None:
        """JPEG bytes of member ``index`` of the group (a thumbnail, or the image up to FULL_SIDE), or None
        when the file cannot be read. Only files of this run are ever opened."""
        g = self._group(group_id)
        if not 0 <= index < len(g["members"]):
            raise review_store.ReviewError(f"group {group_id} has no member {index}")
        member = g["members"][index]
        path = review_state.disk_path(member["path"])
        if not os.path.lexists(path):
            with self._store() as con:
                path = self._moved(review_store.read_actions(con, self.run_id)).get(member["path"], path)
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (path, st.st_size, st.st_mtime_ns, full)
        with self._lock:
            if key in self._previews:
                self._previews.move_to_end(key)
                return self._previews[key]
        data = _jpeg(path, FULL_SIDE if full else THUMB_SIDE, full)
        if data is not None:
            with self._lock:
                self._previews[key] = data
                while len(self._previews) > PREVIEW_CACHE:
                    self._previews.popitem(last=False)
        return data

    # ------------------------------------------------------------------------------------------ actions

    def plan(self, kind: str) -> dict:
        """The dry run of moving (``kind`` 'move') or linking ('link') the non-kept files of the reviewed
        groups: what would happen, and a ``plan_id`` that :meth:`act` needs (so it does exactly this)."""
        from maya.dedup import actions

        if kind not in ("move", "link"):
            raise review_store.ReviewError(f"unknown action {kind!r}: 'move' or 'link'")
        with self._store() as con:
            decisions = review_store.read_decisions(con, self.run_id)
        report = review_state.action_report(self.run["groups"], decisions)
        planned = actions.plan_actions(report, move_to=self.move_to, link=kind == "link")
        todo = [a for a in planned if os.path.isfile(a.path) and not os.path.islink(a.path)]
        key = json.dumps([kind, [(a.path, a.sha256, a.keep, a.backup) for a in todo]], ensure_ascii=True)
        plan_id = hashlib.sha256(key.encode()).hexdigest()[:16]
        self._plans = {plan_id: todo}
        return {"plan_id": plan_id, "kind": kind, "dest": self.move_to, "files": len(todo),
                "bytes": sum(a.size_bytes or 0 for a in todo), "gone": len(planned) - len(todo),
                "groups": len(report["groups"]), "actions": [_shown_action(a) for a in todo]}

    def act(self, kind: str, plan_id: str) -> dict:
        """Carry out the plan ``plan_id`` made by :meth:`plan` (refused if decisions changed since)."""
        from maya.dedup import actions

        current = self.plan(kind)
        if current["plan_id"] != plan_id:
            raise review_store.ReviewError("the decisions or the files changed since the dry run: look at the "
                                           "new dry run and confirm again")
        todo = self._plans[plan_id]
        if not todo:
            raise review_store.ReviewError("nothing to do: no reviewed group has a file to " + kind)
        manifest = actions.default_manifest_path(self.move_to)
        result = actions.apply_actions(todo, manifest)
        with self._store() as con:
            action_id = review_store.add_action(con, self.run_id, kind, manifest, len(todo), result.done)
        self._plans = {}
        return {"action_id": action_id, "manifest": manifest, "done": result.done, "files": len(todo),
                "skipped": [{"path": _text(a.path), "status": a.status} for a in result.skipped]}

    def undo(self, action_id: int) -> dict:
        """Put back the files of an action taken from the page (``maya.dedup.actions.undo``)."""
        from maya.dedup import actions

        with self._store() as con:
            known = {a["action_id"]: a for a in review_store.read_actions(con, self.run_id)}
        a = known.get(action_id)
        if a is None:
            raise review_store.ReviewError(f"no action {action_id} in this review")
        if a["undone_at"] is not None:
            raise review_store.ReviewError(f"action {action_id} was undone already")
        result = actions.undo(a["manifest"])
        with self._store() as con:
            review_store.mark_undone(con, action_id, result.done)
        return {"action_id": action_id, "restored": result.done, "files": len(result.actions),
                "skipped": [{"path": _text(x.path), "status": x.status} for x in result.skipped]}

    def _moved(self, actions_rows: list[dict]) -> dict[str, str]:
        """Stored member path -> backup path, for files that actions not undone moved away."""
        from maya.io.walk import path_text

        out = {}
        for a in reversed(actions_rows):  # oldest first: a later action wins
            if a["undone_at"] is not None:
                continue
            try:
                with open(a["manifest"], encoding="ascii") as f:
                    rows = json.load(f).get("actions", [])
            except (OSError, ValueError):
                continue
            for r in rows:
                if r.get("status") == "done":
                    out[path_text(r["path"])] = r["backup"]
        return out


def _text(path: str) -> str:
    from maya.io.walk import path_text

    return path_text(path)


def _shown_action(a) -> dict:
    return {"path": _text(a.path), "keep": _text(a.keep), "backup": _text(a.backup), "size_bytes": a.size_bytes}


def _jpeg(path: str, side: int, full: bool) -> bytes | None:
    from maya.io import images as imageio

    try:
        image = imageio.load_image(path, min_side=None if full else side).image
    except imageio.ImageLoadError:
        return None
    image.thumbnail((side, side))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90 if full else 78)
    return buf.getvalue()
