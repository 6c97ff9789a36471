"""Acting on a dedup report, safely: move the non-kept members away, or replace them with links.

Nothing here runs unless asked: the CLI prints the plan (a dry run) unless ``--yes``. Only members
that are not the kept file of their group are touched, and each one only when

* it is still a regular file (not a link) with the sha256 the report gave it (unchanged since the scan),
* the kept file of its group still has the sha256 the report gave it (re-read right before its group
  is acted on: a kept file swapped for other content, or a link to ``/etc/passwd``, skips the group),
  and is not the same file (a hard link to it frees nothing),
* its destination does not exist (nothing is ever overwritten).

Actions (every path is absolute, whatever the current folder was):

* ``move``: the file goes to ``<folder>/<its absolute path>`` (mirrored, so two files never collide and
  it is obvious where each came from).
* ``link``: the file goes to the folder the same way, and a link to the kept file takes its place: a
  hard link where the file system allows it, else a symbolic link (recorded per action).

Inside the folder nothing follows a symbolic link and mirrored folders get the permission bits of the
folders they mirror (:mod:`maya.dedup.beneath`). The folder gets a marker file
(``maya.io.walk.MOVED_ASIDE_MARKER``) so a later scan of a tree holding it never walks into it.

The undo manifest (JSON, ``maya-undo-*.json`` in the folder, written atomically with fsync, mode 0600)
is written *before* the first file is touched and again at the end; it carries the sha256 of its own
content (``checksum``). :func:`undo` refuses, before touching anything, a manifest whose checksum
does not match, that another user owns or others may write, that is not in the folder it names, or
whose actions are not what Maya writes (a
path not absolute and normal, a backup that is not that path mirrored inside the folder). Then each
file is restored only when its backup is a regular file inside the folder, reached without following
a link, with the recorded size and sha256, its status says it was done (or the run was interrupted
and the backup verifies), its recorded absolute path is free (or holds the link this action made) and
that path's folder still exists (no folder is created outside the manifest's folder). Anything else
is listed with its reason and left alone. Undo then removes the folders the run created that are
empty again, and marks the manifest ``undone``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Sequence

from maya.dedup import beneath
from maya.errors import MayaUsageError
from maya.io.atomic import atomic_file
from maya.io.printable import printable

MANIFEST_VERSION = 2
#: Largest manifest read (bytes): a million actions fit many times over.
MAX_MANIFEST_BYTES = 1 << 30
_SHA = re.compile(r"[0-9a-f]{64}\Z")


class ActionError(MayaUsageError, ValueError):
    """A request that cannot be carried out as a whole (bad or forged manifest, unusable destination)."""


@dataclass
class Action:
    """One planned change. ``path``: the member (absolute); ``keep``: its group's kept file (absolute);
    ``backup``: where the member's bytes go. ``status``: 'planned', 'done', 'undone', 'skipped: <why>'
    or 'failed: <why>'."""

    kind: str  # "move" | "link"
    path: str
    sha256: str
    size_bytes: int | None
    keep: str
    backup: str
    link_type: str | None = None  # "hard" | "symbolic", once linked
    status: str = "planned"
    keep_sha256: str | None = None


@dataclass
class ActionResult:
    actions: list[Action]
    manifest: str | None
    done: int = 0
    skipped: list[Action] = field(default_factory=list)
    folders_left: list[str] = field(default_factory=list)  # undo: created folders still holding something


def mirrored_path(folder: str, path: str) -> str:
    """``path``'s absolute path placed under ``folder`` (``/a/b.jpg`` -> ``folder/a/b.jpg``)."""
    return os.path.join(folder, *beneath.parts_below(path))


def destination_folder(folder: str) -> str:
    """The folder files are moved to, resolved once (the user named it; links below it are never followed).

    A dangling symbolic link or a file is an :class:`ActionError` with a clear message."""
    real = os.path.realpath(folder)
    if os.path.islink(folder) and not os.path.lexists(real):
        raise ActionError(f"--move-to {printable(folder)} is a symbolic link to {printable(os.readlink(folder))}, "
                          "which does not exist: create that folder or give another")
    if os.path.lexists(real) and not os.path.isdir(real):
        raise ActionError(f"--move-to {printable(folder)} is a file, not a folder")
    return real


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
    dest = destination_folder(dest)
    actions = []
    for g in report["groups"]:
        keep = os.path.abspath(g["keep"])
        keep_sha = next((m["sha256"] for m in g["members"] if m["path"] == g["keep"]), None)
        for m in g["members"]:
            if m["path"] == g["keep"]:
                continue
            path = os.path.abspath(m["path"])
            try:
                size = os.lstat(path).st_size
            except OSError:
                size = None
            actions.append(Action("link" if link else "move", path, m["sha256"], size, keep,
                                  mirrored_path(dest, path), keep_sha256=keep_sha))
    return actions


def describe(actions: Sequence[Action]) -> list[str]:
    """Human lines, one or two per action, for the dry run."""
    lines = []
    for a in actions:
        shown = printable(a.path)
        if a.kind == "move":
            lines.append(f"move  {shown}\n   -> {printable(a.backup)}")
        else:
            lines.append(f"link  {shown}\n   -> {printable(a.keep)}  (original kept at {printable(a.backup)})")
    return lines


def default_manifest_path(folder: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000_000:09d}"
    return os.path.join(destination_folder(folder), f"maya-undo-{stamp}.json")


def apply_actions(actions: Sequence[Action], manifest_path: str) -> ActionResult:
    """Carry out ``actions`` (after the checks in the module docstring), writing the undo manifest first.

    The manifest goes in the folder the actions move files to (``default_manifest_path``). Returns how
    many were done and which were skipped (with ``status`` saying why). A file that fails a check is
    skipped, never forced; the others go ahead.
    """
    from maya.io.walk import MOVED_ASIDE_MARKER

    actions = list(actions)
    folder = os.path.realpath(os.path.dirname(os.path.abspath(manifest_path)))
    manifest_path = os.path.join(folder, os.path.basename(manifest_path))
    for a in actions:
        if a.backup != mirrored_path(folder, a.path):
            raise ActionError(f"the manifest {printable(manifest_path)} must lie in the folder the files go to")
    try:
        root_fd, root, _ = beneath.open_root(folder, create=True)
    except OSError as e:
        raise ActionError(f"cannot use {printable(folder)}: {e.strerror or e}") from None
    created: list[str] = []
    state = {"folder": root, "state": "applying", "created_folders": created}
    result = ActionResult(actions, manifest_path)
    try:
        _write_marker(root_fd, MOVED_ASIDE_MARKER)
        _write_manifest(manifest_path, actions, state)
        keep_verdicts: dict[tuple[str, str | None], str | None] = {}
        for a in actions:
            why = _check(a, keep_verdicts)
            if why:
                a.status = f"skipped: {why}"
                result.skipped.append(a)
                continue
            try:
                _apply_one(a, root_fd, root, created)
                a.status = "done"
                result.done += 1
            except OSError as e:
                a.status = f"failed: {e.strerror or e}"
                result.skipped.append(a)
    finally:
        state["state"] = "applied"
        try:
            _write_manifest(manifest_path, actions, state)
        finally:
            os.close(root_fd)
    return result


def undo(manifest_path: str) -> ActionResult:
    """Put back every file the manifest's actions moved or linked (newest first), after the checks in the
    module docstring. A manifest that fails them as a whole is an :class:`ActionError` and nothing is
    moved; a file that fails them is skipped with its reason (``ActionResult.skipped``). The manifest is
    rewritten with each action's status ('undone' or 'skipped: ...') and marked ``undone``."""
    path = os.path.abspath(manifest_path)
    data = _read_manifest(path)
    folder = os.path.realpath(os.path.dirname(path))
    actions = _verified_actions(data, folder, path)
    try:
        root_fd, root, _ = beneath.open_root(folder, create=False)
    except OSError as e:
        raise ActionError(f"cannot use {printable(folder)}: {e.strerror or e}") from None
    result = ActionResult(actions, path)
    interrupted = data["state"] == "applying"
    try:
        for a in reversed(actions):
            if a.status != "done" and not (interrupted and a.status == "planned"):
                result.skipped.append(a)
                if not a.status.startswith("skipped: not restored"):
                    a.status = f"skipped: not restored (that run did not do it: {a.status})"
                continue
            why = _undo_one(a, root_fd, root)
            if why:
                result.skipped.append(a)
                a.status = f"skipped: not restored ({why})"
            else:
                a.status = "undone"
                result.done += 1
        result.folders_left = beneath.remove_empty_dirs(root_fd, root, data["created_folders"])
    finally:
        os.close(root_fd)
    _write_manifest(path, actions, {"folder": data["folder"], "state": "undone",
                                    "created_folders": data["created_folders"], "undone_at": time.time()})
    return result


# ---------------------------------------------------------------------------------------------- internals


def _check(a: Action, keep_verdicts: dict) -> str | None:
    """Why ``a`` must not be carried out, or None. The kept file is re-read once per group."""
    from maya.io import images as imageio

    try:
        st = os.lstat(a.path)
    except OSError:
        return "the file is gone"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file any more"
    key = (a.keep, a.keep_sha256)
    if key not in keep_verdicts:
        keep_verdicts[key] = _keep_verdict(a)
    if keep_verdicts[key]:
        return keep_verdicts[key]
    keep_st = os.stat(a.keep)
    if (keep_st.st_dev, keep_st.st_ino) == (st.st_dev, st.st_ino):
        return "it is the kept file itself (a hard link)"
    if os.path.lexists(a.backup):
        return f"{printable(a.backup)} exists (never overwritten)"
    try:
        if imageio.sha256_file(a.path) != a.sha256:
            return "its content changed since the scan"
    except imageio.ImageLoadError as e:
        return str(e)
    return None


def _keep_verdict(a: Action) -> str | None:
    from maya.io import images as imageio

    try:
        os.stat(a.keep)
    except OSError:
        return "the kept file of its group is gone"
    try:
        sha = imageio.sha256_file(a.keep)
    except imageio.ImageLoadError as e:
        return f"the kept file of its group cannot be read ({e.detail})"
    if a.keep_sha256 is not None and sha != a.keep_sha256:
        return f"the kept file {printable(a.keep)} changed since the scan (its group is left alone)"
    return None


def _apply_one(a: Action, root_fd: int, root: str, created: list[str]) -> None:
    parts = beneath.parts_below(a.path)
    src_fd = os.open(os.path.dirname(a.path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        dst_fd = beneath.open_dirs(root_fd, root, parts[:-1], mirror=True, created=created)
    except BaseException:
        os.close(src_fd)
        raise
    name = os.path.basename(a.path)
    try:
        beneath.move_entry(src_fd, name, dst_fd, parts[-1])
        if a.kind == "link":
            try:
                a.link_type = _link(a.keep, a.path)
            except OSError:
                beneath.move_entry(dst_fd, parts[-1], src_fd, name)  # put it back as it was
                raise
    finally:
        os.close(src_fd)
        os.close(dst_fd)


def _link(keep: str, path: str) -> str:
    import errno

    try:
        os.link(keep, path)
        return "hard"
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    os.symlink(keep, path)
    return "symbolic"


def _undo_one(a: Action, root_fd: int, root: str) -> str | None:
    parts = beneath.parts_below(a.path)
    try:
        src_fd = beneath.open_dirs(root_fd, root, parts[:-1], mirror=False)
    except FileNotFoundError:
        return "its backup is gone"
    except OSError as e:
        return f"its backup cannot be reached: {e.strerror or e}"
    try:
        st = beneath.entry_stat(src_fd, parts[-1])
        if st is None:
            return "its backup is gone" if a.status == "done" else "not done (nothing at the backup path)"
        if not stat.S_ISREG(st.st_mode):
            return "its backup is not a regular file"
        try:
            sha, size = beneath.sha256_entry(src_fd, parts[-1])
        except OSError as e:
            return f"its backup cannot be read: {e.strerror or e}"
        if a.size_bytes is not None and size != a.size_bytes:
            return f"its backup is {size:,} bytes, the manifest says {a.size_bytes:,}"
        if sha != a.sha256:
            return "its backup's sha256 is not the one recorded"
        try:
            dst_fd = os.open(os.path.dirname(a.path), os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            return f"its folder {printable(os.path.dirname(a.path))} is not there ({e.strerror or e}); none is created"
        try:
            name = os.path.basename(a.path)
            if a.kind == "link" and beneath.entry_stat(dst_fd, name) is not None:
                if not _is_our_link(a):
                    return "something else is at its path now"
                os.unlink(name, dir_fd=dst_fd)
            there = beneath.entry_stat(dst_fd, name)
            if there is not None and (there.st_dev, there.st_ino) == (st.st_dev, st.st_ino):
                os.unlink(parts[-1], dir_fd=src_fd)  # killed between link and unlink: the file never left
                return None
            if there is not None:
                return "a file is at its path again"
            try:
                beneath.move_entry(src_fd, parts[-1], dst_fd, name)
            except OSError as e:
                return f"cannot move it back: {e.strerror or e}"
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
    return None


def _is_our_link(a: Action) -> bool:
    try:
        if os.path.islink(a.path):
            return os.path.abspath(os.path.join(os.path.dirname(a.path), os.readlink(a.path))) == os.path.abspath(a.keep)
        st, keep_st = os.lstat(a.path), os.stat(a.keep)
        return (st.st_dev, st.st_ino) == (keep_st.st_dev, keep_st.st_ino)
    except OSError:
        return False


def _write_marker(root_fd: int, name: str) -> None:
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600, dir_fd=root_fd)
    except FileExistsError:
        return
    try:
        os.write(fd, b"Files maya dedup moved aside (see maya-undo-*.json). Scans never walk into this folder.\n")
    finally:
        os.close(fd)


def _checksum(data: dict) -> str:
    body = {k: v for k, v in data.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def _write_manifest(path: str, actions: Sequence[Action], state: dict) -> None:
    data = {"version": MANIFEST_VERSION, "tool": "maya dedup", "undo": f"maya dedup --undo {path}", **state,
            "actions": [asdict(a) for a in actions]}
    data["checksum"] = _checksum(data)
    with atomic_file(path, text=True, encoding="ascii", mode=0o600, fsync=True) as f:
        json.dump(data, f, indent=1, ensure_ascii=True)


def _read_manifest(path: str) -> dict:
    from maya.io import images as imageio

    shown = printable(path)
    try:
        with imageio.open_regular_file(path, MAX_MANIFEST_BYTES) as f:
            st = os.fstat(f.fileno())
            if hasattr(os, "getuid") and (st.st_uid not in (os.getuid(), 0) or st.st_mode & 0o022):
                raise ActionError(f"{shown} is owned by another user or writable by others: refused (maya "
                                  "writes manifests private to the user who ran it); nothing was moved")
            data = json.loads(f.read().decode("ascii"))
    except imageio.ImageLoadError as e:
        raise ActionError(f"cannot read the undo manifest {shown}: {e.detail}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ActionError(f"{shown} is not a maya undo manifest (not JSON: {e}); nothing was moved") from None
    if not isinstance(data, dict) or data.get("tool") != "maya dedup" or not isinstance(data.get("actions"), list):
        raise ActionError(f"{shown} is not a maya undo manifest; nothing was moved")
    if data.get("version") != MANIFEST_VERSION:
        raise ActionError(f"{shown} is a version {data.get('version')} manifest, which carries no checksum and "
                          "cannot be verified: nothing was moved (its files can be moved back by hand)")
    if data.get("checksum") != _checksum(data):
        raise ActionError(f"{shown} was changed after maya wrote it (its checksum does not match): "
                          "refused, nothing was moved")
    if data.get("state") == "undone":
        raise ActionError(f"{shown} was undone already; nothing was moved")
    if data.get("state") not in ("applying", "applied") or not isinstance(data.get("created_folders"), list):
        raise ActionError(f"{shown} is not a maya undo manifest (no state); nothing was moved")
    return data


def _verified_actions(data: dict, folder: str, path: str) -> list[Action]:
    """The manifest's actions, once every one of them is what apply_actions writes, else ActionError."""
    shown = printable(path)
    if data.get("folder") != folder:
        raise ActionError(f"{shown} names the folder {printable(data.get('folder'))} but lies in "
                          f"{printable(folder)}: refused, nothing was moved")
    names = {f.name for f in fields(Action)}
    actions = []
    for k, raw in enumerate(data["actions"], start=1):
        why = None
        if not isinstance(raw, dict) or set(raw) != names:
            why = "not an action maya writes"
        else:
            a = Action(**raw)
            why = _forged(a, folder)
        if why:
            raise ActionError(f"{shown}: action {k} is refused ({why}); nothing was moved")
        actions.append(a)
    for p in data["created_folders"]:
        if not isinstance(p, str) or not p.startswith(folder + os.sep) or os.path.normpath(p) != p:
            raise ActionError(f"{shown}: a created folder {printable(p)} is not inside {printable(folder)}: refused, "
                              "nothing was moved")
    return actions


def _forged(a: Action, folder: str) -> str | None:
    for name in ("path", "keep", "backup"):
        p = getattr(a, name)
        if not isinstance(p, str) or not os.path.isabs(p) or os.path.normpath(p) != p or "\0" in p:
            return f"its {name} is not an absolute, normal path"
    if a.kind not in ("move", "link") or not isinstance(a.status, str):
        return "unknown kind or status"
    if not isinstance(a.sha256, str) or not _SHA.match(a.sha256):
        return "no sha256 recorded"
    if a.size_bytes is not None and (not isinstance(a.size_bytes, int) or a.size_bytes < 0):
        return "a bad size"
    if a.backup != mirrored_path(folder, a.path):
        return f"its backup {printable(a.backup)} is not its path mirrored inside {printable(folder)}"
    return None
