"""Decode a large PNG straight to a reduced size, a strip of rows at a time: memory of one strip, not the image.

Pillow decodes a PNG whole, and holds RGB at 4 bytes per pixel: one 153-megapixel photo is 612 MB before
any reduction. PNG has no reduced-size decode (JPEG's DCT scaling), but its pixel data is one zlib stream
of filtered rows whose filters look back at most one row. So: inflate the stream incrementally
(``zlib.decompressobj``), cut it into strips of whole rows (a multiple of the reduction factor, about
:data:`STRIP_BYTES` of raw data), hand each strip to Pillow's own PNG row decoder (the ``zip`` codec, which
unfilters), preceded by the previous strip's last row stored unfiltered (filter type 0) so the first row's
filters see the right neighbour, box-reduce the strip (``Image.reduce``) and paste it into the output.
The result is pixel for pixel what a full decode followed by the same ``reduce(factor)`` gives, since
every box lies inside one strip.

Only the common case goes this way: 8-bit grey or RGB, not interlaced, no transparency chunk, no palette,
no EXIF chunk or EXIF/XMP text chunk (orientation), one frame. :func:`decode_reduced` returns None for anything else and the caller
decodes in full. The zlib stream is checked as it goes; damage raises ``zlib.error`` / ``ValueError`` for the
caller to report.
"""

from __future__ import annotations

import struct
import zlib

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Raw (inflated, filtered) bytes per strip, about.
STRIP_BYTES = 8 << 20
#: Chunks whose presence sends the image to the full decode (transparency, palette, orientation, animation).
_FULL_DECODE_CHUNKS = {b"tRNS", b"PLTE", b"eXIf", b"acTL", b"fcTL"}
#: Text-chunk keywords under which Pillow finds EXIF / XMP (and so maybe an orientation).
_ORIENTING_TEXT = {b"raw profile type exif", b"raw profile type app1", b"xml:com.adobe.xmp"}
_MODES = {0: ("L", 1), 2: ("RGB", 3)}  # PNG colour type -> (Pillow mode, bytes per pixel at 8 bits)


def png_layout(data: bytes):
    """``(width, height, mode, bytes per pixel, IDAT spans)`` of a PNG this module decodes, else None."""
    if data[:8] != PNG_SIGNATURE:
        return None
    pos, header, spans = 8, None, []
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        start, end = pos + 8, pos + 8 + length
        if end > len(data):
            return None  # truncated: the full decode reports it
        if kind == b"IHDR" and length >= 13:
            header = struct.unpack(">IIBBBBB", data[start:start + 13])
        elif kind in _FULL_DECODE_CHUNKS:
            return None
        elif kind in (b"tEXt", b"zTXt", b"iTXt") and data[start:min(end, start + 80)].split(b"\0")[0].lower() in _ORIENTING_TEXT:
            return None  # EXIF or XMP in a text chunk may carry an orientation
        elif kind == b"IDAT":
            spans.append((start, end))
        elif kind == b"IEND":
            break
        pos = end + 4  # CRC
    if header is None or not spans:
        return None
    width, height, depth, colour, _compression, _filter, interlace = header
    if depth != 8 or interlace or colour not in _MODES or width == 0 or height == 0:
        return None
    mode, bpp = _MODES[colour]
    return width, height, mode, bpp, spans


def _raw_pieces(data: bytes, spans, piece: int):
    """The inflated pixel stream, in pieces of at most ``piece`` bytes (memory stays bounded even when one
    IDAT chunk inflates to gigabytes)."""
    z = zlib.decompressobj()
    view = memoryview(data)
    for start, end in spans:
        chunk = view[start:end]
        while chunk:
            out = z.decompress(chunk, piece)
            chunk = z.unconsumed_tail
            if out:
                yield out
            if z.eof:
                return
    tail = z.flush()
    if tail:
        yield tail


def decode_reduced(data: bytes, factor: int, *, strip_bytes: int = STRIP_BYTES) -> Image.Image | None:
    """The PNG in ``data`` decoded and box-reduced by ``factor`` (``Image.reduce``), strip by strip; None when
    this PNG is not one this module handles (see the module docstring) or ``factor`` < 2. ``strip_bytes``:
    raw bytes per strip, about (at least ``factor`` rows).

    Returns an image of the PNG's own mode (``L`` or ``RGB``), size ``ceil(w / factor) x ceil(h / factor)``.
    Raises ``ValueError`` when the pixel stream ends early, ``zlib.error`` when it is damaged."""
    layout = png_layout(data)
    if layout is None or factor < 2:
        return None
    width, height, mode, bpp, spans = layout
    stride = width * bpp + 1  # the filter-type byte, then the row
    rows = factor * max(1, strip_bytes // (stride * factor))
    out = Image.new(mode, (-(-width // factor), -(-height // factor)))
    prev = None  # the last row of the previous strip, unfiltered (width * bpp bytes)
    buf = bytearray()
    y = 0
    pieces = _raw_pieces(data, spans, max(1, strip_bytes))
    while y < height:
        n = min(rows, height - y)
        while len(buf) < n * stride:
            more = next(pieces, None)
            if more is None:
                raise ValueError(f"PNG pixel data ends after {y + len(buf) // stride} of {height} rows")
            buf += more
        strip = bytes(buf[:n * stride])
        del buf[:n * stride]
        if prev is None:
            img = Image.frombytes(mode, (width, n), zlib.compress(strip, 0), "zip", mode)
        else:
            img = Image.frombytes(mode, (width, n + 1), zlib.compress(b"\x00" + prev + strip, 0), "zip", mode)
            img = img.crop((0, 1, width, n + 1))
        prev = img.crop((0, n - 1, width, n)).tobytes()
        out.paste(img.reduce(factor), (0, y // factor))
        y += n
    return out
