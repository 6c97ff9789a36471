"""Read and decode image files once, safely, at the size the pipeline needs.

Every stage that looks at pixels (pHash, CLIP) starts from :func:`load_image`
(or :func:`read_file` + :func:`decode_image` when the bytes are already in
memory). It returns a :class:`LoadedImage`: the sha256 of the file bytes (the
image's identity), the original size after EXIF orientation, Pillow's format
name, and an RGB ``PIL.Image.Image`` decoded at reduced scale.

Error contract
--------------
For any file content and any path, these functions either return normally or
raise :class:`ImageLoadError`, whose ``reason`` is one short, stable code:

=============  ===============================================================
reason         meaning
=============  ===============================================================
missing        no such file, a broken symbolic link, or a parent is not a dir
unreadable     permission denied, symlink loop, name too long, I/O error, or
               not a regular file (FIFO, device, socket: never opened blocking)
is_directory   the path is a directory (even one named ``photo.jpg``)
empty          the file has zero bytes
not_an_image   the bytes are not a recognised image (random bytes, text, ...)
truncated      the file ends before the data its header declares
too_large      declared width x height exceeds ``max_pixels`` (checked from the
               header, before any pixel is decoded), Pillow's own
               DecompressionBombError/-Warning, or MemoryError while decoding
unsupported    a real image format that is not decoded here (HEIC, PSD, SVG,
               JPEG 2000, ...), a codec Pillow lacks, or a pixel mode that
               cannot be turned into RGB
corrupt        any other exception raised while decoding; the message keeps the
               original exception's type and text
=============  ===============================================================

Nothing else escapes, with two deliberate exceptions that signal a bug in the
caller rather than a bad file: ``TypeError`` when ``path`` is not a path-like
object, and ``ValueError`` for a non-positive ``min_side`` / ``max_pixels``.
``KeyboardInterrupt`` and ``SystemExit`` are never swallowed.

What a decoded image looks like
-------------------------------
* Mode ``RGB``, EXIF-oriented (all 8 orientations, read with Pillow's
  ``Image.getexif`` exactly like ``ImageOps.exif_transpose``, including XMP
  orientation). A broken EXIF block is ignored (orientation 1), not an error.
* Reduced once, never upscaled: when the original's shorter side ``s`` is
  ``>= min_side``, the result's shorter side lies in ``[min_side, 2*min_side)``;
  otherwise the original size is kept. JPEG (and MPO) is decoded directly at
  1/2, 1/4 or 1/8 scale with libjpeg's DCT scaling (``Image.draft``); any
  remaining factor (and every other format, after a full decode) is removed
  with one integer box reduction (``Image.reduce``). Large 8-bit grey/RGB PNGs
  (``PNG_STRIP_MIN_PIXELS``) are decoded and reduced a strip of rows at a
  time (``maya.io.png_strips``), the same pixels in the memory of one strip.
* Transparency (RGBA, LA, PA, palette or grey/RGB with a tRNS colour) is
  composited over a background that contrasts with the visible pixels: **black**
  when they are mostly light (their mean grey, weighted by alpha, above 127 of
  255), **white** otherwise (and when nothing is visible), so a white-on-
  transparent drawing keeps its shape (decode version 2; version 1 always used
  white).
* 16-bit grey (``I;16*``) is scaled to 8 bit as ``round(v * 255 / 65535)``
  (Pillow's own ``convert`` would clip everything above 255 to white).
  32-bit ``I``: values already in 0..255 are kept, values in 0..65535 are scaled
  as 16 bit, anything else is stretched linearly from [min, max].
  ``F``: values in [0, 1] are multiplied by 255, anything else is stretched
  linearly from [min, max]; NaN becomes 0. CMYK, YCbCr, 1-bit, L, P use
  Pillow's ``convert("RGB")`` (no ICC colour management).
* Animated GIF/WebP/PNG and multi-page TIFF: the first frame only.

Safety
------
* Only the formats in :data:`DECODABLE_FORMATS` are ever parsed, so a file
  named ``.jpg`` that is really PostScript never reaches Ghostscript, and
  formats with weak signatures (TGA, ...) cannot mistake random bytes for an
  image.
* Decompression bombs are rejected from the header (``too_large``) before any
  pixel memory is allocated. Pillow's own limit ``PIL.Image.MAX_IMAGE_PIXELS``
  still applies on top: it raises above twice 89.5 MP, so a ``max_pixels``
  above ``2 * PIL.Image.MAX_IMAGE_PIXELS`` only takes effect if the caller
  raises Pillow's limit too. Pillow's DecompressionBombWarning is silenced and
  HEIC / HEIF decode with pillow-heif: see :mod:`maya.io.pillow_setup`.
* Truncated files are errors: this module never sets
  ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` (if other code sets it to True, Pillow
  pads truncated images with grey instead of raising).
* No global state is changed; all functions are safe to call from many threads
  at once (Pillow releases the GIL while decoding).

Known limits: Pillow accepts a PNG whose compressed stream ends cleanly before
the last row (the missing rows come out black), so such a file loads; libtiff
prints its own decoding errors for broken TIFFs to stderr; the whole file is
read into memory (needed anyway for the sha256 and the decode).
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Union

from PIL import Image, UnidentifiedImageError

from maya.io.opener import (  # noqa: F401  (re-exported: the error and opener every caller knows from here)
    REASONS,
    ImageLoadError,
    _os_error,
    _printable,
    file_kind,
    open_regular_file,
    open_text_file,
)
from maya.io.pillow_setup import prepare_pillow

PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

#: Largest declared width*height that is decoded. Equal to Pillow's error
#: threshold (2 * PIL.Image.MAX_IMAGE_PIXELS), e.g. 16384 x 10922; a 102 MP
#: medium-format photo still loads (with Pillow's DecompressionBombWarning).
DEFAULT_MAX_PIXELS = 178_956_970

#: Bumped when the pixels a given file decodes to change (2: contrast compositing of transparency); the
#: feature cache keys (``maya.hashing.phash.ALGORITHM``, ``maya.embedding.preprocessing.PREPROCESS_VERSION``)
#: name it.
DECODE_VERSION = 2

#: Decoded images keep at least this shorter side (pixels) when the original
#: has it. 256 leaves headroom over CLIP's 224 and pHash's 32.
DEFAULT_MIN_SIDE = 256

#: Pillow format names that are parsed at all, tried in this order. Names not
#: registered in this Pillow (e.g. "HEIF" without pillow-heif) are skipped.
DECODABLE_FORMATS: tuple[str, ...] = (
    "JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "MPO", "AVIF", "HEIF",
)

_READ_CHUNK = 1 << 20  # bytes per read() when hashing a file
#: Largest file read whole into memory (bytes): env MAYA_MAX_FILE_BYTES, default 2 GiB.
MAX_FILE_BYTES = int(os.environ.get("MAYA_MAX_FILE_BYTES", 2 << 30))



@dataclass(frozen=True)
class LoadedImage:
    """One decoded image file.

    Attributes:
        sha256: hex sha256 of the file bytes (64 chars) -- the image's identity.
        size_bytes: length of the file in bytes.
        width, height: size of the original image in pixels, after EXIF
            orientation (a portrait photo stored landscape reports width < height).
        format: Pillow's format name ("JPEG", "PNG", "GIF", "WEBP", "TIFF",
            "BMP", "MPO", ...).
        image: the decoded image, mode "RGB", EXIF-oriented, alpha composited
            over a contrasting black or white, reduced so that its shorter side lies in
            [min_side, 2*min_side) -- or the original size if the original's
            shorter side is below min_side. Never larger than the original.
    """

    sha256: str
    size_bytes: int
    width: int
    height: int
    format: str
    image: Image.Image


# --------------------------------------------------------------------------- files


def read_file(path: PathLike, max_bytes: int | None = None) -> bytes:
    """Return the whole content of the regular file at ``path`` (at most :data:`MAX_FILE_BYTES`).

    Raises:
        ImageLoadError: reason "missing", "unreadable", "is_directory" or
            "empty" (see the module docstring).
    """
    with open_regular_file(path, MAX_FILE_BYTES if max_bytes is None else max_bytes) as f:
        try:
            data = f.read()
        except MemoryError:
            raise ImageLoadError("too_large", path, "file too large to read into memory") from None
        except OSError as e:
            raise _os_error(e, path) from e
    if not data:
        raise ImageLoadError("empty", path, "file is empty (0 bytes)")
    return data


def sha256_file(path: PathLike) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB chunks (memory stays flat).

    An empty file hashes normally (no "empty" error here).

    Raises:
        ImageLoadError: reason "missing", "unreadable" or "is_directory".
    """
    digest = hashlib.sha256()
    with open_regular_file(path) as f:
        try:
            while chunk := f.read(_READ_CHUNK):
                digest.update(chunk)
        except OSError as e:
            raise _os_error(e, path) from e
    return digest.hexdigest()


#: PNGs of at least this many pixels are decoded strip by strip (``maya.io.png_strips``) when they are to be
#: reduced: peak memory is then one strip, not the image (Pillow holds RGB at 4 bytes per pixel).
PNG_STRIP_MIN_PIXELS = 16_000_000


def load_image(
    path: PathLike,
    *,
    min_side: int | None = DEFAULT_MIN_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LoadedImage:
    """Read the file at ``path`` and decode it: :func:`read_file` + :func:`decode_image`.

    Raises:
        ImageLoadError: any reason in :data:`REASONS`; ``e.path`` is ``path``.
    """
    _check_limits(min_side, max_pixels)
    data = read_file(path)
    return decode_image(data, path=path, min_side=min_side, max_pixels=max_pixels)


# --------------------------------------------------------------------------- decoding


def decode_image(
    data: bytes,
    *,
    path: PathLike | None = None,
    min_side: int | None = DEFAULT_MIN_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> LoadedImage:
    """Decode an encoded image held in memory.

    Args:
        data: the complete file content (bytes, bytearray or memoryview).
        path: where the bytes came from; only used in error messages.
        min_side: shorter side (pixels) to keep when reducing; None decodes at
            full size.
        max_pixels: largest declared width*height accepted (pixels).

    Returns:
        A :class:`LoadedImage` with an RGB image; see the module docstring for
        the size, orientation and mode rules.

    Raises:
        ImageLoadError: reason "empty", "not_an_image", "truncated",
            "too_large", "unsupported" or "corrupt".
    """
    _check_limits(min_side, max_pixels)
    if not isinstance(data, bytes):
        data = bytes(data)
    if not data:
        raise ImageLoadError("empty", path, "file is empty (0 bytes)")
    sha256 = hashlib.sha256(data).hexdigest()
    try:
        fmt, width, height, image = _decode_rgb(data, path, min_side, max_pixels)
    except ImageLoadError:
        raise
    except Exception as e:  # the contract: every decoding failure becomes an ImageLoadError
        err = _decode_error(e, path, len(data))
        fmt = _format_by_signature(data[:16])
        if fmt is not None:
            err = ImageLoadError(err.reason, path, f"{fmt}: {err.detail}")
        raise err from e
    return LoadedImage(sha256, len(data), width, height, fmt, image)


def _decode_rgb(
    data: bytes, path: PathLike | None, min_side: int | None, max_pixels: int
) -> tuple[str, int, int, Image.Image]:
    """Return (format, oriented width, oriented height, reduced RGB image)."""
    try:
        im = Image.open(io.BytesIO(data), formats=_decodable_formats())
    except UnidentifiedImageError:
        raise _unidentified_error(data, path) from None
    fmt = im.format or "unknown"
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageLoadError("corrupt", path, f"{fmt} header declares a {width}x{height} image")
    if width * height > max_pixels:
        raise ImageLoadError(
            "too_large", path,
            f"{fmt} header declares {width}x{height} = {width * height:,} pixels, "
            f"more than max_pixels={max_pixels:,}",
        )
    if min_side is not None and fmt == "PNG" and width * height >= PNG_STRIP_MIN_PIXELS:
        from maya.io import png_strips  # large PNG: reduced strip by strip, never whole (same pixels)

        reduced = png_strips.decode_reduced(data, min(width, height) // min_side)
        if reduced is not None:
            im.close()
            return fmt, width, height, reduced if reduced.mode == "RGB" else reduced.convert("RGB")
    if min_side is not None:
        # JPEG only (a no-op elsewhere): DCT-scale by the largest of 1/2, 1/4,
        # 1/8 that keeps BOTH sides >= min_side, hence the shorter side too,
        # whichever way the image is later rotated.
        im.draft("RGB", (min_side, min_side))
    im.load()
    orientation = _exif_orientation(im)
    rgb = _to_rgb(im, path)
    if min_side is not None:
        factor = min(rgb.size) // min_side
        if factor >= 2:
            rgb = rgb.reduce(factor)
    transpose = _ORIENTATION_TRANSPOSE.get(orientation)
    if transpose is not None:
        rgb = rgb.transpose(transpose)
        for key in ("xmp", "XML:com.adobe.xmp"):  # may carry the orientation too
            rgb.info.pop(key, None)
        if orientation >= 5:
            width, height = height, width
    if rgb is im and (fmt != "JPEG" or im.fp is not None):
        # Multi-frame readers keep the file object (and so `data`) alive: detach.
        # A loaded JPEG has dropped it; skipping the copy saves ~3 ms per
        # full-size 1024x768 decode (a second large allocation).
        rgb = im.copy()
    rgb.info.pop("exif", None)  # its orientation tag no longer describes the pixels
    return fmt, width, height, rgb


# The same table as PIL.ImageOps.exif_transpose: orientation -> transposition
# that makes the stored pixels upright.
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _exif_orientation(im: Image.Image) -> int:
    """EXIF (or XMP) orientation 1..8 of a loaded image; 1 when absent or unreadable."""
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # broken EXIF must not cost us an otherwise good photo
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def _to_rgb(im: Image.Image, path: PathLike | None) -> Image.Image:
    """Convert a loaded image of any Pillow mode to RGB (alpha over a contrasting black or white)."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode.startswith("I;16") or mode.startswith("I;32") or mode in ("I", "F"):
        return _high_depth_to_rgb(im)
    if mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        alpha = rgba.getchannel("A")
        background = Image.new("RGB", rgba.size, _contrast_background(rgba, alpha))
        background.paste(rgba, mask=alpha)
        return background
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise ImageLoadError("unsupported", path, f"cannot convert mode {mode} to RGB: {e}") from e


def _contrast_background(rgba: Image.Image, alpha: Image.Image) -> tuple[int, int, int]:
    """Black when the visible pixels are mostly light (alpha-weighted mean grey above 127 of 255), else white.

    Over a fixed white, a white-on-transparent drawing would come out blank (and every such drawing
    would share one pHash); over the contrasting colour its shape survives. Dark-on-transparent and
    fully transparent images keep the white of before. Deterministic: a function of the pixels only.
    """
    from PIL import ImageChops, ImageStat

    weight = ImageStat.Stat(alpha).sum[0]
    if weight <= 0:
        return (255, 255, 255)
    weighted = ImageStat.Stat(ImageChops.multiply(rgba.convert("L"), alpha)).sum[0]  # sum of L * a / 255
    return (0, 0, 0) if 255.0 * weighted / weight > 127 else (255, 255, 255)


def _high_depth_to_rgb(im: Image.Image) -> Image.Image:
    """16/32-bit integer and float grey images -> 8-bit RGB (rules in the module docstring)."""
    import numpy as np

    values = np.asarray(im)
    if im.mode.startswith("I;16"):
        grey = _scale_16_bit(values)
    else:
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if im.mode == "F" and lo >= 0.0 and hi <= 1.0:
            grey = np.rint(values * 255.0).astype(np.uint8)
        elif im.mode != "F" and lo >= 0 and hi <= 255:
            grey = values.astype(np.uint8)
        elif im.mode != "F" and lo >= 0 and hi <= 65535:
            grey = _scale_16_bit(values.astype(np.uint32))
        elif hi > lo:
            grey = np.rint((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)
        else:
            grey = np.zeros(values.shape, np.uint8)
    return Image.fromarray(np.ascontiguousarray(grey)).convert("RGB")


def _scale_16_bit(values):
    """uint16-range integers -> uint8 by round(v * 255 / 65535), exact in integers."""
    import numpy as np

    return ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


@lru_cache(maxsize=1)
def heif_available() -> bool:
    """Whether HEIC / HEIF files decode here (pillow-heif installed)."""
    return "HEIF" in _decodable_formats()


def _decodable_formats() -> tuple[str, ...]:
    """DECODABLE_FORMATS that this Pillow has registered (Image.open raises KeyError on others)."""
    prepare_pillow()
    Image.init()
    return tuple(f for f in DECODABLE_FORMATS if f in Image.OPEN)


# --------------------------------------------------------------------------- errors

# Signatures of real image formats that are deliberately not decoded, so that a
# user learns "unsupported: IMG_0001.HEIC" rather than "not an image".
# (predicate on the first 4 KiB, human name)
_UNSUPPORTED_SIGNATURES = (
    (lambda h: h[4:8] == b"ftyp" and h[8:12] in {b"heic", b"heix", b"hevc", b"hevx",
                                                 b"heim", b"heis", b"mif1", b"msf1"},
     "HEIF/HEIC (to decode phone photos: pip install pillow-heif, or pip install 'mirror-of-maya[heic]')"),
    (lambda h: h[4:8] == b"ftyp" and h[8:12] in {b"avif", b"avis"}, "AVIF"),
    (lambda h: h[4:12] == b"ftypcrx ", "Canon CR3 raw"),
    (lambda h: h.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")), "JPEG XL"),
    (lambda h: h.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")), "JPEG 2000"),
    (lambda h: h.startswith(b"8BPS"), "Photoshop PSD"),
    (lambda h: h.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")), "PostScript/EPS"),
    (lambda h: h.startswith(b"%PDF-"), "PDF"),
    (lambda h: h.startswith(b"DDS "), "DirectDraw DDS"),
    (lambda h: h.startswith(b"qoif"), "QOI"),
    (lambda h: h.startswith((b"\x00\x00\x01\x00", b"\x00\x00\x02\x00")) and len(h) > 6 and h[4] > 0,
     "Windows ICO/CUR"),
    (lambda h: b"<svg" in h[:4096].lower() and h.lstrip()[:1] == b"<", "SVG"),
)


def _signature_verdicts(prefix: bytes):
    """``(format, verdict)`` for each decodable format whose signature check answers ``prefix`` (16 bytes):
    a true value, or a str (Pillow's way of saying "this format, but an unsupported variant")."""
    for fmt in _decodable_formats():
        accept = Image.OPEN[fmt][1]
        try:
            verdict = accept(prefix) if accept is not None else False
        except Exception:
            continue
        if verdict:
            yield fmt, verdict


def _format_by_signature(prefix: bytes) -> str | None:
    """The first decodable format whose signature check accepts ``prefix`` (16 bytes), if any."""
    return next((fmt for fmt, verdict in _signature_verdicts(prefix) if not isinstance(verdict, str)), None)


def _unidentified_error(data: bytes, path: PathLike | None) -> ImageLoadError:
    """Explain why Image.open found no decodable format in ``data``."""
    prefix = data[:16]
    for fmt, verdict in _signature_verdicts(prefix):
        if isinstance(verdict, str):  # this format, but a variant Pillow cannot decode
            return ImageLoadError("unsupported", path, f"{fmt}: {verdict}")
    fmt = _format_by_signature(prefix)
    if fmt is not None:
        # The signature matches but the header did not parse: ask the plugin why.
        try:
            Image.OPEN[fmt][0](io.BytesIO(data), "")
        except Exception as e:
            err = _decode_error(e, path, len(data))
            return ImageLoadError(err.reason, path, f"{fmt} header unreadable: {err.detail}")
        return ImageLoadError("corrupt", path, f"{fmt} signature found but Pillow could not open it")
    head = data[:4096]
    for matches, name in _UNSUPPORTED_SIGNATURES:
        if matches(head):
            return ImageLoadError("unsupported", path, f"{name} images are not decoded")
    if _looks_like_text(head):
        return ImageLoadError("not_an_image", path, f"text, not an image ({len(data):,} bytes)")
    return ImageLoadError(
        "not_an_image", path,
        f"no known image signature ({len(data):,} bytes, starts with {prefix[:8].hex(' ')})",
    )


def _looks_like_text(head: bytes) -> bool:
    """True when ``head`` (the first 4 KiB) is printable UTF-8 text."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        # A multi-byte character cut at the 4 KiB boundary is still text.
        if len(head) < 4096 or e.start < len(head) - 3:
            return False
        text = head[: e.start].decode("utf-8")
    return bool(text) and all(c.isprintable() or c in "\t\n\r\f" for c in text)


def _decode_error(e: BaseException, path: PathLike | None, n_bytes: int) -> ImageLoadError:
    """Map an exception raised while decoding to an ImageLoadError."""
    if isinstance(e, ImageLoadError):
        return e
    message = str(e) or type(e).__name__
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageLoadError("too_large", path, f"Pillow decompression-bomb limit: {message}")
    if isinstance(e, MemoryError):
        return ImageLoadError("too_large", path, "out of memory while decoding")
    lowered = message.lower()
    if isinstance(e, (EOFError, struct.error)) or "truncat" in lowered:
        return ImageLoadError(
            "truncated", path, f"{message} (file ends after {n_bytes:,} bytes)"
        )
    if ("not available" in lowered or "unsupported" in lowered or "not supported" in lowered):
        return ImageLoadError("unsupported", path, f"{type(e).__name__}: {message}")
    return ImageLoadError("corrupt", path, f"{type(e).__name__}: {message}")


def _check_limits(min_side: int | None, max_pixels: int) -> None:
    if min_side is not None and (not isinstance(min_side, int) or min_side < 1):
        raise ValueError(f"min_side must be a positive int or None, got {min_side!r}")
    if not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive int, got {max_pixels!r}")
