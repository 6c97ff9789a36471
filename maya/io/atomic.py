"""The one atomic writer: a file appears whole under its name, or not at all.

Data goes to a temporary file in the destination folder (``mkstemp``: private while written), which is
flushed, given the mode an ordinary new file gets here (0o666 less the umask, unless ``mode`` says
otherwise) and renamed over the destination. A crash leaves the old file (or none) and at most a
``.maya-tmp-*`` file, never a half-written one.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from typing import IO, Iterator

_NEW_FILE_MODE: int | None = None


def new_file_mode() -> int:
    """The permission bits an ordinary new file gets here (0o666 less the umask)."""
    global _NEW_FILE_MODE
    if _NEW_FILE_MODE is None:
        mask = os.umask(0o022)
        os.umask(mask)
        _NEW_FILE_MODE = 0o666 & ~mask
    return _NEW_FILE_MODE


def give_new_file_mode(fd: int, mode: int | None = None) -> None:
    """Set an open (``mkstemp``) file to ``mode`` (default :func:`new_file_mode`), where the platform can."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, new_file_mode() if mode is None else mode)


@contextmanager
def atomic_file(path: str | os.PathLike, *, text: bool = False, mode: int | None = None, newline: str | None = None,
                encoding: str = "utf-8", errors: str = "strict", make_folder: bool = True, fsync: bool = False) -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; on a clean exit it replaces ``path``.

    ``text``: a text stream (``encoding``, ``errors``, ``newline`` as for :func:`open`), else binary. ``mode``: the
    final permission bits (default: those of an ordinary new file). ``fsync``: flush to disk before the
    rename (for files whose loss would hurt, like undo manifests). On an exception the temporary file is
    removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if make_folder:
        os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".maya-tmp-")
    try:
        give_new_file_mode(fd, mode)
        kwargs = {"encoding": encoding, "errors": errors, "newline": newline} if text else {}
        with os.fdopen(fd, "w" if text else "wb", **kwargs) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_atomically(path: str | os.PathLike, data: bytes, *, mode: int | None = None, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path, mode=mode, fsync=fsync) as f:
        f.write(data)
