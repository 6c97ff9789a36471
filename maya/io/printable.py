"""The one way a path or a name is shown to a person: printable text, one line.

File names are bytes chosen by whoever made the file: they may hold ESC (terminal escape sequences
that clear the screen or set the title), BEL, CR and LF (that forge summary lines), Unicode format
characters (right-to-left overrides) or bytes that are not UTF-8. :func:`printable` makes any such
text safe to print: undecodable bytes become ``\\xNN`` and every character that is not printable
(``str.isprintable``: control, format, line/paragraph separators) becomes its ``\\xNN`` / ``\\uNNNN``
escape. Printable text comes back unchanged. Used by every terminal line, error message and
``problem`` line that names a path; it is for display only (the store keeps paths losslessly, see
:func:`maya.io.walk.path_text`).
"""

from __future__ import annotations

import os


def printable(text) -> str:
    """``text`` (a str, bytes or path) as one printable line: control characters and undecodable bytes escaped."""
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    text = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def printable_lines(text) -> str:
    """Like :func:`printable`, but line breaks (``\\n``) between lines are kept: for multi-line messages."""
    return "\n".join(printable(line) for line in str(text).split("\n"))
