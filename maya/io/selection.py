"""Which of the files a walk meets the user wants: ``maya dedup --exclude GLOB --min-size SIZE --ext EXT``.

A :class:`FileSelection` is applied by the walker (:func:`maya.io.walk.walk_images`) on top of its own
rules (image extensions, hidden files, links):

* ``exclude``: shell globs (``fnmatch``, case-sensitive as on the file system). A file or folder is left out
  when a glob matches its name (``'*.tmp'``, ``'Thumbnails'``) or its whole path as walked
  (``'*/cache/*'``); a folder left out is not entered.
* ``min_size``: files smaller than this many bytes are left out (thumbnails, icons).
* ``extensions``: when given, only files whose extension is one of these (lower case, with the dot) are
  taken, instead of the walker's image extensions.

Files named on the command line themselves are always taken: the user chose them.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass

from maya.errors import MayaUsageError

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


class SelectionError(MayaUsageError, ValueError):
    """A filter option that cannot be understood (exit 2)."""


def parse_size(text: str) -> int:
    """Bytes from ``"50000"``, ``"100KB"``, ``"1.5MB"``, ``"2MiB"`` (KB = 1000 bytes, KiB = 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise SelectionError(f"--min-size takes a size like 50000, 100KB or 2MiB; got {text!r}")
    return int(float(m.group(1)) * _UNITS[unit])


def parse_extensions(values) -> frozenset[str] | None:
    """``["jpg,png", ".HEIC"]`` -> ``{".jpg", ".png", ".heic"}``; None or empty -> None (no filter)."""
    out = set()
    for v in values or ():
        for part in str(v).split(","):
            part = part.strip().lower()
            if part:
                out.add(part if part.startswith(".") else "." + part)
    if values and not out:
        raise SelectionError("--ext takes extensions like jpg,png")
    return frozenset(out) or None


@dataclass(frozen=True)
class FileSelection:
    """Globs to leave out, the smallest size taken (bytes), and the extensions taken (None: the walker's)."""

    exclude: tuple[str, ...] = ()
    min_size: int = 0
    extensions: frozenset[str] | None = None

    def left_out(self, path: str) -> bool:
        """Whether a glob of ``exclude`` matches ``path``'s name or the whole path."""
        name = os.path.basename(path)
        return any(fnmatch.fnmatchcase(name, g) or fnmatch.fnmatchcase(path, g) for g in self.exclude)

    def as_dict(self) -> dict:
        return {"exclude": list(self.exclude), "min_size": self.min_size,
                "extensions": sorted(self.extensions) if self.extensions else None}

    @classmethod
    def from_dict(cls, d: dict | None) -> "FileSelection | None":
        if not d:
            return None
        ext = d.get("extensions")
        return cls(tuple(d.get("exclude") or ()), int(d.get("min_size") or 0), frozenset(ext) if ext else None)
