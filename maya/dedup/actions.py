"""Acting on a dedup report, safely: move the non-kept members away, or replace them with links.

Nothing here runs unless asked: the CLI prints the plan (a dry run) unless ``--yes``. Only members
that are not the kept file of their group are touched, and each one only when

* it is still a regular file (not a link) with the sha256 the report gave it (unchanged since the scan),
* the kept file of its group still exists and is not the same file (a hard link to it frees nothing),
* its destination does not exist (nothing is ever overwritten).

Actions:

* ``move``: the file goes to ``<move_to>/<its absolute path>`` (the absolute path mirrored under the
  folder, so two files never collide and it is obvious where each came from).
* ``link``: the file goes to the backup folder the same way, and a link to the kept file takes its
  place: a hard link where the file system allows it, else a symbolic link (recorded per action).

An undo manifest (JSON) is written *before* the first file is touched and rewritten with each
action's outcome at the end; :func:`undo` puts every file back from it, and is safe to run on a
manifest of a run that was interrupted half way (it restores what was done, skips the rest).
"""

from __future__ import annotations

from maya.errors import MayaUsageError

import errno
import json
import os
import shutil
import stat
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

from maya.io.atomic import atomic_file

MANIFEST_VERSION = 1


class ActionError(MayaUsageError, ValueError):
    """A request that cannot be carried out as a whole (bad manifest, missing destination)."""


@dataclass
class Action:
    """One planned change. ``path``: the member; ``keep``: its group's kept file; ``backup``: where the
    member's bytes go. ``status`` is 'planned', 'done', 'skipped: <why>' or 'failed: <why>'."""

    kind: str  # "move" | "link"
    path: str
    sha256: str
    size_bytes: int | None
    keep: str
    backup: str
    link_type: str | None = None  # "hard" | "symbolic", once linked
    status: str = "planned"


@dataclass
class ActionResult:
    actions: list[Action]
    manifest: str | None
    done: int = 0
    skipped: list[Action] = field(default_factory=list)


def mirrored_path(folder: str, path: str) -> str:
    """``path``'s absolute path placed under ``folder`` (``/a/b.jpg`` -> ``folder/a/b.jpg``)."""
    drive, rest = os.path.splitdrive(os.path.abspath(path))
    parts = [drive.replace(":", "")] if drive else []
    return os.path.join(folder, *parts, rest.lstrip("\\/"))


def plan_actions(report: dict, *, move_to: str | None = None, link: bool = False,
                 backup_dir: str | None = None) -> list[Action]:
    """The actions for every non-kept member of every group of ``report`` (a dedup report dict).

    ``move_to``: move members there. ``link``: replace members by links to the kept file; their bytes
    go to ``move_to`` if given, else ``backup_dir``. Raises :class:`ActionError` when neither applies.
    """
    if not move_to and not link:
        raise ActionError("nothing to do: give --move-to DIR or --link")
    dest = move_to or backup_dir
    if not dest:
        raise ActionError("--link needs a folder for the originals (--move-to DIR)")
    dest = os.path.abspath(dest)
    actions = []
    for g in report["groups"]:
        for m in g["members"]:
            if m["path"] == g["keep"]:
                continue
            try:
                size = os.lstat(m["path"]).st_size
            except OSError:
                size = None
            actions.append(Action("link" if link else "move", m["path"], m["sha256"], size, g["keep"],
                                  mirrored_path(dest, m["path"])))
    return actions


def describe(actions: Sequence[Action]) -> list[str]:
    """Human lines, one or two per action, for the dry run."""
    lines = []
    for a in actions:
        shown = _shown(a.path)
        if a.kind == "move":
            lines.append(f"move  {shown}\n   -> {_shown(a.backup)}")
        else:
            lines.append(f"link  {shown}\n   -> {_shown(a.keep)}  (original kept at {_shown(a.backup)})")
    return lines


def default_manifest_path(folder: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000_000:09d}"
    return os.path.join(os.path.abspath(folder), f"maya-undo-{stamp}.json")


def apply_actions(actions: Sequence[Action], manifest_path: str) -> ActionResult:
    """Carry out ``actions`` (after the checks in the module docstring), writing the undo manifest first.

    Returns how many were done and which were skipped (with ``status`` saying why). A file that fails
    a check is skipped, never forced; the others go ahead.
    """
    actions = list(actions)
    _write_manifest(manifest_path, actions)
    result = ActionResult(actions, manifest_path)
    try:
        for a in actions:
            why = _check(a)
            if why:
                a.status = f"skipped: {why}"
                result.skipped.append(a)
                continue
            try:
                _move_file(a.path, a.backup)
                if a.kind == "link":
                    try:
                        a.link_type = _link(a.keep, a.path)
                    except OSError:
                        _move_file(a.backup, a.path)  # put it back as it was
                        raise
                a.status = "done"
                result.done += 1
            except OSError as e:
                a.status = f"failed: {e.strerror or e}"
                result.skipped.append(a)
    finally:
        _write_manifest(manifest_path, actions)
    return result


def undo(manifest_path: str) -> ActionResult:
    """Put back every file the manifest's actions moved or linked (newest first).

    A file is restored only where its original path is free again (or holds the link this action made)
    and its backup still exists; otherwise it is skipped with the reason. The manifest is rewritten with
    each action's status ('undone' or 'skipped: ...').
    """
    try:
        with open(manifest_path, encoding="ascii") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise ActionError(f"cannot read the undo manifest {manifest_path}: {getattr(e, 'strerror', None) or e}") from None
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION or "actions" not in data:
        raise ActionError(f"{manifest_path} is not a maya undo manifest")
    actions = [Action(**a) for a in data["actions"]]
    result = ActionResult(actions, manifest_path)
    for a in reversed(actions):
        why = _undo_one(a)
        if why:
            result.skipped.append(a)
            a.status = f"skipped: {why}" if not a.status.startswith("skipped") else a.status
        else:
            a.status = "undone"
            result.done += 1
    _write_manifest(manifest_path, actions)
    return result


# ---------------------------------------------------------------------------------------------- internals


def _shown(path: str) -> str:
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _check(a: Action) -> str | None:
    """Why ``a`` must not be carried out, or None."""
    from maya.io import images as imageio

    try:
        st = os.lstat(a.path)
    except OSError:
        return "the file is gone"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file any more"
    try:
        keep_st = os.stat(a.keep)
    except OSError:
        return "the kept file of its group is gone"
    if (keep_st.st_dev, keep_st.st_ino) == (st.st_dev, st.st_ino):
        return "it is the kept file itself (a hard link)"
    if os.path.lexists(a.backup):
        return f"{_shown(a.backup)} exists (never overwritten)"
    try:
        if imageio.sha256_file(a.path) != a.sha256:
            return "its content changed since the scan"
    except imageio.ImageLoadError as e:
        return str(e)
    return None


def _move_file(src: str, dst: str) -> None:
    """Move a file; across file systems copy, check the copy's size, then remove the source."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "destination exists", dst)
    try:
        os.rename(src, dst)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dst), prefix=".maya-tmp-")
    os.close(fd)
    try:
        shutil.copy2(src, tmp)
        if os.path.getsize(tmp) != os.path.getsize(src):
            raise OSError(errno.EIO, "copy is incomplete", dst)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    os.unlink(src)


def _link(keep: str, path: str) -> str:
    try:
        os.link(keep, path)
        return "hard"
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    os.symlink(os.path.abspath(keep), path)
    return "symbolic"


def _undo_one(a: Action) -> str | None:
    if not os.path.lexists(a.backup):
        return "not done (nothing at the backup path)" if a.status != "done" else "its backup is gone"
    if a.kind == "link" and os.path.lexists(a.path):
        if not _is_our_link(a):
            return "something else is at its path now"
        os.unlink(a.path)
    if os.path.lexists(a.path):
        return "a file is at its path again"
    _move_file(a.backup, a.path)
    return None


def _is_our_link(a: Action) -> bool:
    try:
        if os.path.islink(a.path):
            return os.path.abspath(os.path.join(os.path.dirname(a.path), os.readlink(a.path))) == os.path.abspath(a.keep)
        st, keep_st = os.lstat(a.path), os.stat(a.keep)
        return (st.st_dev, st.st_ino) == (keep_st.st_dev, keep_st.st_ino)
    except OSError:
        return False


def _write_manifest(path: str, actions: Sequence[Action]) -> None:
    data = {"version": MANIFEST_VERSION, "tool": "maya dedup",
            "undo": f"maya dedup --undo {path}", "actions": [asdict(a) for a in actions]}
    with atomic_file(path, text=True, encoding="ascii") as f:
        json.dump(data, f, indent=1, ensure_ascii=True)
