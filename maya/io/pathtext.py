"""Paths as database text, losslessly (DuckDB's VARCHAR holds only valid UTF-8).

A POSIX file name is any bytes but ``/`` and NUL; Python gives undecodable bytes as surrogate escapes.
:func:`path_text` writes ``\\`` as ``\\\\`` and each undecodable byte as ``\\xNN``; since a
backslash is itself escaped, no two names share a text (an earlier scheme wrote only the bytes, so the
literal name ``a\\xff.png`` and the byte name ``a<0xFF>.png`` collided on the ``files`` primary key).
:func:`text_path` is the inverse. No imports beyond the standard library: the store uses it too.
"""

from __future__ import annotations


def path_text(path: str) -> str:
    """``path`` as valid UTF-8 text for the database, losslessly: ``\\`` becomes ``\\\\`` and each
    byte that is not UTF-8 becomes ``\\xNN``, so two different names never share a key (the literal
    name ``a\\xff.png`` is stored as ``a\\\\xff.png``, the byte name ``a<0xFF>.png`` as ``a\\xff.png``).

    Valid UTF-8 paths without a backslash come back unchanged; :func:`text_path` is the inverse.
    """
    if "\\" not in path:
        try:
            path.encode("utf-8")
            return path
        except UnicodeEncodeError:
            pass
    out = []
    for c in path:
        if c == "\\":
            out.append("\\\\")
        elif "\udc80" <= c <= "\udcff":  # a surrogate escape: the byte 0x80-0xFF that is not UTF-8
            out.append(f"\\x{ord(c) - 0xDC00:02x}")
        else:
            out.append(c)
    return "".join(out)


def text_path(text: str) -> str:
    """The path :func:`path_text` stored as ``text`` (undecodable bytes as surrogate escapes again)."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and text.startswith("\\\\", i):
            out.append("\\")
            i += 2
        elif c == "\\" and text[i + 1:i + 2] == "x" and _is_hex_byte(text[i + 2:i + 4]):
            out.append(chr(0xDC00 + int(text[i + 2:i + 4], 16)))
            i += 4
        else:  # written before paths were stored losslessly: taken as it stands
            out.append(c)
            i += 1
    return "".join(out)


def _is_hex_byte(two: str) -> bool:
    return len(two) == 2 and all(c in "0123456789abcdefABCDEF" for c in two) and int(two, 16) >= 0x80
