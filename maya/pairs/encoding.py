"""Encoders of edited images: a fast deterministic PNG writer, and the JPEG / WebP / PNG encodings.

No metadata and no timestamps, so the same pixels give the same bytes on one Pillow / zlib build.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from maya.pairs.edit_levels import (
    _as_rgb,
)

# --------------------------------------------------------------------------- encoders


def encode_png(image: Image.Image, row_filter: str = "up") -> bytes:
    """Encode an "RGB" or "L" image as a minimal, deterministic 8-bit PNG.

    One IHDR, one IDAT, one IEND chunk; no metadata. Every row uses the same PNG filter
    (``"up"``: difference to the row above, or ``"sub"``: difference to the pixel on the left),
    computed with numpy, then zlib level 1 with the RLE strategy. Other modes are converted to
    RGB first. Decodes losslessly with any PNG reader.
    """
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    pixels = np.asarray(image)
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = pixels.reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), dtype=np.uint8)
    if row_filter == "up":
        filtered[:, 0] = 2
        filtered[0, 1:] = rows[0]
        np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    elif row_filter == "sub":
        filtered[:, 0] = 1
        filtered[:, 1 : 1 + channels] = rows[:, :channels]
        np.subtract(rows[:, channels:], rows[:, :-channels], out=filtered[:, 1 + channels :])
    else:
        raise ValueError(f"row_filter must be 'up' or 'sub', not {row_filter!r}")
    compressor = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    idat = compressor.compress(filtered) + compressor.flush()
    colour_type = 0 if channels == 1 else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _png_chunk(tag: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + tag
        + payload
        + struct.pack(">I", zlib.crc32(payload, zlib.crc32(tag)))
    )


def _encode(image: Image.Image, encoding: dict | None) -> tuple[bytes, str]:
    """Encode ``image`` with ``encoding`` (None = default lossless PNG); return (bytes, ext)."""
    fmt = None if encoding is None else encoding["format"]
    if fmt is None or fmt == "png":
        if image.mode == "P":
            # Palette PNG: Pillow does not filter palette rows, so its encoder is fast here.
            buffer = io.BytesIO()
            image.save(buffer, "PNG", compress_level=1)
            return buffer.getvalue(), "png"
        row_filter = "up" if encoding is None else encoding.get("row_filter", "up")
        return encode_png(image, row_filter=row_filter), "png"
    buffer = io.BytesIO()
    if fmt == "jpg":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(
            buffer,
            "JPEG",
            quality=int(encoding["quality"]),
            subsampling=encoding["subsampling"],
            optimize=False,
            progressive=False,
        )
        return buffer.getvalue(), "jpg"
    if fmt == "webp":
        _as_rgb(image).save(
            buffer,
            "WEBP",
            quality=int(encoding["quality"]),
            method=int(encoding["method"]),
            lossless=False,
        )
        return buffer.getvalue(), "webp"
    raise ValueError(f"unknown encoding format {fmt!r}")


