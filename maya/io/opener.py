"""The one opener of files Maya reads, and the error every unusable file becomes.

Images, labelled-pair CSVs, groups CSVs, undo manifests and ``maya sql --file`` scripts are all opened
by :class:`open_regular_file`: ``O_NONBLOCK`` (a FIFO never blocks), then ``fstat`` of the *opened*
descriptor: anything but a regular file (FIFO, socket, ``/dev/zero`` and other devices) is refused
before a byte is read, and a file over the caller's size bound (bytes) is ``too_large``.
:class:`ImageLoadError` carries a stable ``reason`` code; ``maya.io.images`` re-exports both.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from contextlib import contextmanager
from typing import Iterator, TextIO, Union

from maya.errors import MayaError

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

#: Every reason code :class:`ImageLoadError` may carry.
REASONS = frozenset({
    "missing", "unreadable", "is_directory", "empty", "not_an_image",
    "truncated", "too_large", "unsupported", "corrupt",
})



class ImageLoadError(MayaError):
    """A file that could not be turned into an RGB image.

    Attributes:
        reason: one of :data:`REASONS` -- short, stable, safe to store and group by.
        path: the path as given, as ``str`` (``os.fsdecode``; undecodable bytes
            are kept as surrogate escapes, so ``os.fsencode(path)`` gives the
            original bytes back), or None when only bytes were decoded.
        detail: human explanation of what went wrong.

    ``str(e)`` is one printable line, ``"<reason>: <path>: <detail>"``
    (``"<reason>: <detail>"`` without a path), with undecodable bytes and
    control characters in the path shown as backslash escapes.
    """

    def __init__(self, reason: str, path: PathLike | None, detail: str):
        if reason not in REASONS:
            raise ValueError(f"unknown ImageLoadError reason {reason!r}")
        path_str = None if path is None else os.fsdecode(path)
        # args are exactly the __init__ arguments so the error pickles (Dask).
        super().__init__(reason, path_str, detail)
        self.reason = reason
        self.path = path_str
        self.detail = detail

    def __str__(self) -> str:
        detail = _printable(self.detail)
        if self.path is None:
            return f"{self.reason}: {detail}"
        return f"{self.reason}: {_printable(self.path)}: {detail}"



def _os_error(e: OSError, path: PathLike) -> ImageLoadError:
    """Map an OSError from opening or reading a file to an ImageLoadError."""
    if isinstance(e, FileNotFoundError):
        try:
            broken_link = os.path.islink(path)
        except (OSError, ValueError):
            broken_link = False
        detail = "broken symbolic link (its target does not exist)" if broken_link else "no such file"
        return ImageLoadError("missing", path, detail)
    if isinstance(e, NotADirectoryError):
        return ImageLoadError("missing", path, "a parent of this path is a file, not a directory")
    if isinstance(e, IsADirectoryError):
        return ImageLoadError("is_directory", path, "is a directory, not a file")
    if isinstance(e, PermissionError):
        return ImageLoadError("unreadable", path, "permission denied")
    if e.errno == errno.ELOOP:
        return ImageLoadError(
            "unreadable", path, "symbolic link loop (too many levels of symbolic links)"
        )
    if e.errno == errno.ENAMETOOLONG:
        return ImageLoadError("unreadable", path, "file name too long")
    return ImageLoadError("unreadable", path, e.strerror or str(e))


class open_regular_file:
    """The one opener of the files Maya reads (images, CSVs, manifests, SQL files), in every command.

    Context manager: a binary file object for a regular file, else ImageLoadError. Opens with
    O_NONBLOCK so a FIFO cannot hang the caller, then checks the *opened* descriptor with fstat (no
    check-then-open race): a FIFO, socket or device (``/dev/zero``) is ``unreadable: not a regular
    file`` before one byte is read; a file larger than ``max_bytes`` (when given) is ``too_large``.
    """

    def __init__(self, path: PathLike, max_bytes: int | None = None):
        self.path = path
        self.max_bytes = max_bytes
        self.file = None

    def __enter__(self):
        path = os.fspath(self.path)  # TypeError for a non-path: a caller bug
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
        flags |= getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(path, flags)
        except ValueError:  # embedded NUL byte: no such file can exist
            raise ImageLoadError("missing", self.path, "path contains a NUL byte") from None
        except OSError as e:
            raise _os_error(e, self.path) from e
        try:
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise ImageLoadError("is_directory", self.path, "is a directory, not a file")
            if not stat.S_ISREG(mode):
                raise ImageLoadError("unreadable", self.path, f"not a regular file ({file_kind(mode)})")
            size = os.fstat(fd).st_size
            if self.max_bytes is not None and size > self.max_bytes:
                raise ImageLoadError("too_large", self.path, f"{size:,} bytes, more than the {self.max_bytes:,} allowed")
            self.file = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        return self.file

    def __exit__(self, *exc_info):
        self.file.close()
        return False


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words (for error messages)."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def _printable(text: str) -> str:
    """One printable line (:func:`maya.io.printable.printable`)."""
    from maya.io.printable import printable

    return printable(text)


@contextmanager
def open_text_file(path: PathLike, *, max_bytes: int | None = None, encoding: str = "utf-8-sig") -> Iterator[TextIO]:
    """A text stream (``newline=""``, as the csv module wants: quoted newlines kept) of a regular file,
    read as it goes (bounded memory); see :class:`open_regular_file` for the checks."""
    with open_regular_file(path, max_bytes) as f:
        yield io.TextIOWrapper(f, encoding=encoding, newline="")
