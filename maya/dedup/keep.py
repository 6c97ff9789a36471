"""Which file of a group to keep: the one that looks like the source, or what the user says (``--keep``,
``--prefer``), and why.

"Largest resolution" alone keeps the wrong file: a copy with an added border has more pixels than its
original, and of byte-identical files the one under ``backup/`` is as good as any. The default policy,
``source``, prefers in this order:

1. a file matching a ``--prefer GLOB`` (any policy; globs match the whole path, ``fnmatch`` style);
2. a file not marked as a copy: no folder named like ``backup``, ``bak``, ``copy``, ``copies``,
   ``duplicate(s)``, ``dup(s)``, ``old``, ``trash``, and no file name like ``x copy.jpg``, ``x (1).jpg``,
   ``Copy of x.jpg`` (:func:`looks_like_a_copy`);
3. a file that is not a copy with an added frame: a uniform border or padding around a picture that is
   another file of the group (:func:`added_frame`, found by the caller with the inner views of
   :mod:`maya.views`: the copy's inner view is nearer the other file than the copy itself is);
4. a file under an earlier root on the command line;
5. then most pixels, most bytes, oldest mtime, smallest path (deterministic).

``largest`` is 5 alone; ``oldest`` / ``newest`` put the mtime first; ``first-root`` puts 4 first. Every
policy starts with 1. :func:`keep_order` gives the sort key; :func:`keep_reason` says in words which key
decided, for the JSON.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import os
import re
from typing import Sequence

KEEP_POLICIES = ("source", "largest", "oldest", "newest", "first-root")

_COPY_FOLDER = re.compile(r"^(backups?|bak|copy|copies|duplicates?|dups?|old|trash|\.trash)([ _.-].*)?$|"
                          r"^.*[ _.-](backups?|bak|copy|copies|duplicates?|dups?)$", re.IGNORECASE)
_COPY_NAME = re.compile(r"(^copy of )|([ _-]copy( \d+)?$)|( \(\d+\)$)|([ _-]\d*bak$)", re.IGNORECASE)


def looks_like_a_copy(path: str) -> bool:
    """Whether ``path`` is marked as a copy by a folder or file name (see the module docstring)."""
    folder, name = os.path.split(os.path.normpath(path))
    return _folder_marks_a_copy(folder) or bool(_COPY_NAME.search(os.path.splitext(name)[0]))


@functools.lru_cache(maxsize=4096)
def _folder_marks_a_copy(folder: str) -> bool:
    """Whether a folder on the (normalised) path ``folder`` is named like a copy; asked once per folder, not per
    file of it."""
    return any(_COPY_FOLDER.match(p) for p in folder.split(os.sep) if p)


_KEYS = {  # per policy: the keys, most important first (see keep_order)
    "source": ("prefer", "copy", "frame", "root", "pixels", "bytes", "oldest", "path"),
    "largest": ("prefer", "pixels", "bytes", "oldest", "path"),
    "oldest": ("prefer", "oldest", "pixels", "bytes", "path"),
    "newest": ("prefer", "newest", "pixels", "bytes", "path"),
    "first-root": ("prefer", "root", "pixels", "bytes", "oldest", "path"),
}

_WORDS = {"prefer": "matches --prefer", "copy": "not in a folder or under a name that marks a copy",
          "frame": "not a copy with an added border around another file of the group",
          "root": "under an earlier root on the command line", "pixels": "most pixels", "bytes": "largest file",
          "oldest": "oldest", "newest": "newest", "path": "first path in order"}


#: An added frame: at least this share of the pixels outside the inner box lie within FRAME_TOLERANCE levels
#: (every channel) of the frame's median colour. A padding or a border drawn by an editor is one flat colour;
#: a photo's own dark sky or white wall has noise and gradients, so it is no added frame.
FRAME_FLAT = 0.98
FRAME_TOLERANCE = 3


def added_frame(image, box: tuple[float, float, float, float]) -> bool:
    """Whether ``image`` (PIL) is a picture inside an added uniform frame: the pixels of the outer half of the
    frame around ``box`` (fractions of width and height, :func:`maya.views.inner_box`) are one flat colour
    (see FRAME_FLAT)."""
    import numpy as np

    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    h, w = rgb.shape[:2]
    # the outer half of the frame only: the box is found on a small copy, so its edge may lie a little inside
    # the picture
    left, top, right, bottom = box[0] / 2, box[1] / 2, (1 + box[2]) / 2, (1 + box[3]) / 2
    outside = np.ones((h, w), bool)
    outside[round(top * h):round(bottom * h), round(left * w):round(right * w)] = False
    frame = rgb[outside]
    if frame.shape[0] < max(16, 0.02 * h * w):
        return False
    median = np.median(frame, axis=0)
    return bool(np.all(np.abs(frame - median) <= FRAME_TOLERANCE, axis=1).mean() >= FRAME_FLAT)


def keep_order(policy: str, path: str, pixels: int, size: int, mtime: float, roots: Sequence[str] = (),
               prefer: Sequence[str] = (), framed: bool = False) -> tuple:
    """Sort key of one file under ``policy``: the smallest is kept. ``framed``: the file is a copy with an added
    frame (:func:`added_frame`). For many files, :class:`KeepKeys`."""
    return KeepKeys(policy, roots, prefer)(path, pixels, size, mtime, framed)


class KeepKeys:
    """:func:`keep_order` for many files under one policy, roots and globs: what depends only on those is worked
    out once (a rerun over a large collection asks for the key of every file in a pair). ``keys(path, pixels, size,
    mtime, framed)`` equals ``keep_order(policy, path, pixels, size, mtime, roots, prefer, framed)``."""

    def __init__(self, policy: str, roots: Sequence[str] = (), prefer: Sequence[str] = ()):
        self.names = _KEYS[policy]
        self.prefer = tuple(prefer)
        self.roots = tuple((r, r.rstrip(os.sep) + os.sep) for r in map(os.path.normpath, roots))

    def _root(self, path: str) -> int:
        """Position of the first root ``path`` lies under (len(roots) when none)."""
        path = os.path.normpath(path)
        for k, (r, prefix) in enumerate(self.roots):
            if path == r or path.startswith(prefix):
                return k
        return len(self.roots)

    def __call__(self, path: str, pixels: int, size: int, mtime: float, framed: bool = False) -> tuple:
        m = mtime if mtime is not None and not math.isnan(mtime) else math.inf
        out = []
        for name in self.names:
            if name == "prefer":
                out.append(0 if self.prefer and any(fnmatch.fnmatch(path, g) for g in self.prefer) else 1)
            elif name == "copy":
                out.append(int(looks_like_a_copy(path)))
            elif name == "frame":
                out.append(int(bool(framed)))
            elif name == "root":
                out.append(self._root(path))
            elif name == "pixels":
                out.append(-int(pixels))
            elif name == "bytes":
                out.append(-int(size))
            elif name == "oldest":
                out.append(m)
            elif name == "newest":
                out.append(-m if m != math.inf else math.inf)
            else:
                out.append(path)
        return tuple(out)


def keep_reason(policy: str, kept: tuple, others: Sequence[tuple]) -> str:
    """Why the file with key ``kept`` was kept over ``others`` (keys from :func:`keep_order`), in words."""
    if not others:
        return f"keep rule {policy}"
    runner_up = min(others)
    for name, a, b in zip(_KEYS[policy], kept, runner_up):
        if a != b:
            return f"keep rule {policy}: {_WORDS[name]}"
    return f"keep rule {policy}"
