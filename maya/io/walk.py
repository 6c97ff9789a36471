"""The one folder walker and the one image-extension list: what ``maya dedup`` and ``maya pairs build`` see.

Walk rules (``walk_images``):

* Recursive and deterministic: in each folder its files come first, then its sub-folders (depth
  first), each in name order, so the same tree always gives the same list.
* Symbolic links are **not followed** by default: a link to a folder is not entered and a link to a
  file is not read (counted in ``Walk.skipped["symlink"]``). A link with an image name whose target
  is missing or loops is a problem with a reason (``missing`` / ``unreadable``), never a silent skip.
  With ``follow_symlinks=True`` links are followed and folders already entered (same device and
  inode) are not entered twice, so link loops end.
  The roots themselves are always followed: the user named them.
* Hidden files and folders (name starting with ``.``) are skipped unless ``include_hidden``.
* A file is taken when its extension is one of :data:`IMAGE_EXTENSIONS` (case-insensitive); other
  files are counted in ``Walk.skipped["not_an_image_name"]``. A folder named like an image
  (``2019.jpg/``) is a folder: it is walked into.
* Folders in ``exclude`` (Maya's own data folder, the ``--move-to`` folder), and folders holding the
  file :data:`MOVED_ASIDE_MARKER` (an earlier ``--move-to`` folder), are not entered when met inside a
  root, so files moved aside are not found again (counted in ``Walk.skipped["excluded"]``).
* One file reached twice (overlapping roots, a hard link, a followed link) is taken once, under the
  first path found; the others are counted in ``Walk.skipped["same_file"]``. Moving one of two hard
  links would free nothing, so they are not reported as duplicates of each other.
* Something with an image name that is not a regular file (FIFO, socket, device) is a problem with
  reason ``unreadable``; it is never opened (a FIFO would block).

Paths are kept exactly as the walk produced them (``str``; bytes that are not valid UTF-8 appear as
surrogate escapes, so ``os.fsencode(path)`` is the real name). DuckDB only stores valid UTF-8, so the
database holds :func:`path_text` of a path: backslashes doubled and undecodable bytes written as
``\\xNN`` (lossless: :func:`text_path` gives the path back). Deep paths: a name whose full path is
longer than the system allows (``ENAMETOOLONG``) is a problem ``unreadable: file name too long``, a
folder so deep it cannot be listed too, never a silent skip.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import Iterable

from maya.io.images import file_kind
from maya.io.pathtext import path_text, text_path  # noqa: F401  (re-exported)

#: File name extensions taken as images (lower case). HEIC/HEIF/AVIF decode only with Pillow's
#: plugins; without them they are listed as ``unsupported`` rather than skipped unseen.
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".gif", ".bmp", ".dib",
    ".tif", ".tiff", ".heic", ".heif", ".avif", ".mpo",
})


@dataclass(frozen=True)
class FoundFile:
    """A file the walk took. ``size_bytes`` and ``mtime`` (seconds since the epoch) are from its stat."""

    path: str
    size_bytes: int
    mtime: float


@dataclass(frozen=True)
class FileProblem:
    """A path that cannot be used. ``reason`` is a short code (those of ``maya.io.images.ImageLoadError``
    plus ``changed``); ``error`` is one printable line, ``"<reason>: <detail>"``."""

    path: str
    reason: str
    error: str


@dataclass
class Walk:
    """What ``walk_images`` found: files to identify, problems, and counts of what it left out."""

    files: list[FoundFile] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count: hidden, symlink, ...

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def problem(path: str, reason: str, detail: str) -> FileProblem:
    """A :class:`FileProblem` whose error line is printable (no control characters, no surrogates)."""
    return FileProblem(path, reason, f"{reason}: {_printable(detail)}")


def problem_from_load_error(path: str, exc) -> FileProblem:
    """A :class:`FileProblem` from a ``maya.io.images.ImageLoadError`` (the path is not repeated)."""
    return problem(path, exc.reason, exc.detail)


# ---------------------------------------------------------------------------------------------- walk


def walk_images(
    roots: Iterable[str | os.PathLike],
    *,
    follow_symlinks: bool = False,
    include_hidden: bool = False,
    extensions: frozenset[str] = IMAGE_EXTENSIONS,
    exclude: Iterable[str | os.PathLike] = (),
    selection=None,
) -> Walk:
    """Every image file under ``roots`` (folders or single files), by the rules in the module docstring.

    A root that does not exist or cannot be listed becomes a problem (callers that want a usage error
    check the roots first). Returns a :class:`Walk`; ``files`` are in walk order (roots in the given
    order; in each folder its files, then its sub-folders, by name). ``selection``: the user's filters
    (:class:`maya.io.selection.FileSelection`: globs, smallest size, extensions), counted in ``skipped``.
    """
    walk = Walk()
    if selection is not None and selection.extensions:
        extensions = selection.extensions
    seen_files: set[tuple[int, int]] = set()
    seen_dirs: set[tuple[int, int]] = set()
    excluded: set[tuple[int, int]] = set()
    for folder in exclude:
        try:
            st = os.stat(folder)
            excluded.add((st.st_dev, st.st_ino))
        except OSError:
            pass  # a folder that does not exist yet cannot be met
    for root in roots:
        root = os.fspath(root)
        try:
            st = os.stat(root)
        except OSError as e:
            walk.problems.append(_os_problem(root, e))
            continue
        if stat.S_ISDIR(st.st_mode):
            _walk_dir(walk, root, st, seen_files, seen_dirs, follow_symlinks, include_hidden, extensions, excluded,
                      selection)
        else:
            # A file named on the command line is taken whatever its extension: the user chose it.
            _take_file(walk, root, st, seen_files)
    return walk


#: The file ``maya dedup --move-to`` leaves in its folder: a folder holding it is never walked into
#: (files moved aside are not found again, whichever --move-to a later run is given).
MOVED_ASIDE_MARKER = ".maya-moved-aside"


def _walk_dir(walk, root, root_stat, seen_files, seen_dirs, follow, include_hidden, extensions, excluded,
              selection=None) -> None:
    stack = [(root, (root_stat.st_dev, root_stat.st_ino))]
    root_key = stack[0][1]
    while stack:
        folder, key = stack.pop()
        if key in seen_dirs:
            walk._skip("same_folder")
            continue
        seen_dirs.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                walk._skip("name_too_long")
            walk.problems.append(_os_problem(folder, e, what="folder cannot be listed"))
            continue
        if key != root_key and any(e.name == MOVED_ASIDE_MARKER for e in entries):
            walk._skip("excluded")
            continue
        subfolders = []
        for entry in entries:
            if not include_hidden and entry.name.startswith("."):
                walk._skip("hidden")
                continue
            path = entry.path
            if selection is not None and selection.exclude and selection.left_out(path):
                walk._skip("excluded_glob")
                continue
            image_name = os.path.splitext(entry.name)[1].lower() in extensions
            try:
                is_link = entry.is_symlink()
                st = entry.stat(follow_symlinks=False)
            except OSError as e:  # vanished between listing and stat, or a path too long to name
                if e.errno == errno.ENAMETOOLONG:  # whatever it is (a deep folder, an image): say so
                    walk._skip("name_too_long")
                    walk.problems.append(_os_problem(path, e))
                elif image_name:
                    walk.problems.append(_os_problem(path, e))
                continue
            if is_link:
                try:
                    target = os.stat(path)
                except OSError as e:
                    if image_name:  # a broken link named like an image: the user expects a picture there
                        walk.problems.append(_os_problem(path, e))
                    else:
                        walk._skip("broken_symlink")
                    continue
                if not follow:
                    walk._skip("symlink")
                    continue
                st = target
            if stat.S_ISDIR(st.st_mode):
                if (st.st_dev, st.st_ino) in excluded:
                    walk._skip("excluded")
                else:
                    subfolders.append((path, (st.st_dev, st.st_ino)))
            elif not image_name:
                walk._skip("not_an_image_name")
            elif stat.S_ISREG(st.st_mode):
                if selection is not None and st.st_size < selection.min_size:
                    walk._skip("too_small")
                    continue
                _take_file(walk, path, st, seen_files)
            else:
                walk.problems.append(problem(path, "unreadable", f"not a regular file ({file_kind(st.st_mode)})"))
        # depth first, names in order: push in reverse so the first name is walked first
        stack.extend(reversed(subfolders))


def _take_file(walk: Walk, path: str, st: os.stat_result, seen_files: set) -> None:
    if not stat.S_ISREG(st.st_mode):
        walk.problems.append(problem(path, "unreadable", f"not a regular file ({file_kind(st.st_mode)})"))
        return
    key = (st.st_dev, st.st_ino)
    if key in seen_files:
        walk._skip("same_file")
        return
    seen_files.add(key)
    walk.files.append(FoundFile(path, int(st.st_size), float(st.st_mtime)))


def _os_problem(path: str, e: OSError, what: str | None = None) -> FileProblem:
    if isinstance(e, FileNotFoundError):
        detail = "broken symbolic link (its target does not exist)" if os.path.islink(path) else "no such file"
        reason = "missing"
    elif isinstance(e, PermissionError):
        reason, detail = "unreadable", "permission denied"
    elif e.errno == errno.ELOOP:
        reason, detail = "unreadable", "symbolic link loop (too many levels of symbolic links)"
    elif e.errno == errno.ENAMETOOLONG:
        reason, detail = "unreadable", "file name too long"
    elif isinstance(e, NotADirectoryError):
        reason, detail = "missing", "a parent of this path is a file, not a folder"
    else:
        reason, detail = "unreadable", e.strerror or str(e)
    if what:
        detail = f"{what}: {detail}"
    return problem(path, reason, detail)


def _printable(text: str) -> str:
    from maya.io.printable import printable

    return printable(text)
