"""A corpus of hostile and awkward image files, built by code (never downloaded).

``build_hostile_corpus(root)`` writes every case under ``root`` and returns
``{name: expected ImageLoadError reason, or None for a file that must load}``,
where ``name`` is the path relative to ``root`` as ``str`` (a non-UTF-8 name is
a ``str`` with surrogate escapes: ``root / name`` and ``os.fsencode(name)`` give
the real bytes back). Other tests import it to feed the same corpus through
their own stages (hashing, ingestion into DuckDB, ...).

The corpus is small (38 entries, about 0.65 MB) and builds in about 0.1-0.3 s. Real
photo content comes from ``skimage/data/coffee.png`` (shipped with
scikit-image, read without importing skimage).

Permissions: the file ``unreadable.png`` is a valid PNG with mode 000. Root
(and any process with CAP_DAC_OVERRIDE, as in CI containers) reads it anyway,
and so would root with a non-searchable parent directory, so no file can be
made unreadable for root. The builder therefore *probes*: if this process can
still open the file, its expected reason is None (it is a good image to this
process) instead of "unreadable". ``permissions_enforced(root)`` tells tests
which case they are in so they can skip exactly that expectation.
"""

from __future__ import annotations

import importlib.util
import io
import os
import random
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

#: Size (width, height) of the upright photo behind the EXIF orientation files.
#: Multiples of 16 so JPEG blocks line up in every orientation.
PHOTO_SIZE = (240, 160)
#: Colour of the first frame of animated.gif and the first page of multipage.tif
#: (later frames/pages are other colours).
FIRST_FRAME_RGB = (220, 30, 30)
LATER_FRAME_RGBS = ((30, 200, 40), (20, 40, 230))
#: Name of the chmod-000 file (see the module docstring).
PERMISSION_DENIED_NAME = "unreadable.png"
#: Names of the eight EXIF orientation files, orientation -> name.
ORIENTATION_NAMES = {k: f"orientation_{k}.jpg" for k in range(1, 9)}
#: grey16.png: a horizontal ramp 0..65535 over this many columns (rows identical).
GREY16_WIDTH = 256

# Stored pixels for orientation k are upright.transpose(_STORE[k]); a viewer that
# honours the tag undoes it. (EXIF 6 = "rotate 90 degrees clockwise to view", so
# the stored image is the upright one turned counter-clockwise: ROTATE_90.)
_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def skimage_data_dir() -> Path:
    """Folder of scikit-image's bundled sample images (found without importing skimage)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-image is not installed; the hostile corpus needs its sample photos")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def upright_photo() -> Image.Image:
    """The real photo (coffee.png, resized to PHOTO_SIZE), RGB, upright."""
    with Image.open(skimage_data_dir() / "coffee.png") as im:
        return im.convert("RGB").resize(PHOTO_SIZE, Image.Resampling.LANCZOS)


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    """Encode ``image`` with Pillow into bytes."""
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload, CRC."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int = 50_000, height: int = 50_000, rows: int = 64) -> bytes:
    """A PNG that declares width x height 8-bit grey pixels but stays tiny.

    Only the first ``rows`` rows of zeros are present (compressed, a few KiB);
    decoding it fully would need width*height bytes (2.5 GB for the default).
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    raw = zlib.compress(b"\x00" * ((width + 1) * rows), 9)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", raw) + png_chunk(b"IEND", b"")


def bomb_jpeg(width: int = 65_000, height: int = 65_000) -> bytes:
    """A real small JPEG whose SOF header is patched to declare width x height."""
    data = bytearray(encode(Image.new("RGB", (16, 16), (90, 90, 90)), "JPEG", quality=80))
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):  # SOF0/1/2: FF Cx len(2) precision(1) height(2) width(2)
            data[i + 5:i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + length
    raise AssertionError("no SOF marker in Pillow's JPEG")


def grey16_ramp() -> np.ndarray:
    """uint16 array (8, GREY16_WIDTH): each row is a linear ramp from 0 to 65535."""
    ramp = np.linspace(0, 65535, GREY16_WIDTH).round().astype(np.uint16)
    return np.tile(ramp, (8, 1))


def permissions_enforced(root: Path) -> bool:
    """True when this process really cannot read ``root/PERMISSION_DENIED_NAME``."""
    try:
        with open(Path(root) / PERMISSION_DENIED_NAME, "rb"):
            return False
    except PermissionError:
        return True


def build_hostile_corpus(root: Path) -> dict[str, str | None]:
    """Write the corpus under ``root`` (created if needed); return name -> expected reason.

    Reasons are those of ``maya.io.images.ImageLoadError``; None means the file is
    a valid image that must load. Cases the platform cannot create (FIFO,
    non-UTF-8 name on a filesystem that rejects it) are left out of the dict.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}

    def put(name: str, data: bytes, reason: str | None) -> Path:
        path = root / name
        path.write_bytes(data)
        expected[name] = reason
        return path

    photo = upright_photo()
    photo_jpeg = encode(photo.resize((480, 320)), "JPEG", quality=90)
    photo_png = encode(photo, "PNG")

    # --- files that are not images, or broken ones
    put("empty.jpg", b"", "empty")
    put("truncated.jpg", photo_jpeg[: len(photo_jpeg) * 2 // 5], "truncated")
    put("truncated.png", photo_png[: len(photo_png) * 3 // 5], "truncated")
    put("random_bytes.jpg", random.Random(20240601).randbytes(4096), "not_an_image")
    put("text.png", ("This is not a picture.\nJust some text with an image extension.\n" * 20).encode(),
        "not_an_image")
    bad_idat = bytearray(photo_png)
    idat = bad_idat.index(b"IDAT") + 4
    bad_idat[idat + 2: idat + 40] = bytes(38)  # zlib stream broken, chunk length intact
    put("bad_idat.png", bytes(bad_idat), "corrupt")
    put("bomb_50000x50000.png", bomb_png(), "too_large")
    put("bomb_65000x65000.jpg", bomb_jpeg(), "too_large")
    from maya.io.images import heif_available  # with pillow-heif, a HEIC header alone is a broken HEIC

    put("heic_header.heic", struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00mif1heic",
        "corrupt" if heif_available() else "unsupported")
    put("postscript.jpg", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "unsupported")

    # --- odd but valid images
    put("one_pixel.png", encode(Image.new("RGB", (1, 1), (12, 34, 56)), "PNG"), None)
    strip = np.zeros((20, 20_000, 3), np.uint8)
    strip[..., 0] = (np.arange(20_000) % 256).astype(np.uint8)
    put("strip_20000x20.png", encode(Image.fromarray(strip), "PNG"), None)
    put("cmyk.jpg", encode(photo.convert("CMYK"), "JPEG", quality=90), None)
    put("grey16.png", encode(Image.fromarray(grey16_ramp()), "PNG"), None)
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    put("palette_transparent.png", encode(palette, "PNG", transparency=0), None)
    put("la.png", encode(photo.convert("LA"), "PNG"), None)
    rgba = photo.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(PHOTO_SIZE))
    put("rgba.png", encode(rgba, "PNG"), None)
    put("ok.webp", encode(photo, "WEBP", quality=80), None)
    put("ok.bmp", encode(photo.resize((64, 48)), "BMP"), None)
    put("bilevel.tif", encode(photo.convert("1"), "TIFF"), None)
    for k, name in ORIENTATION_NAMES.items():
        stored = photo if _STORE[k] is None else photo.transpose(_STORE[k])
        exif = Image.Exif()
        exif[0x0112] = k
        put(name, encode(stored, "JPEG", quality=92, exif=exif), None)
    frames = [Image.new("RGB", (32, 24), c) for c in (FIRST_FRAME_RGB, *LATER_FRAME_RGBS)]
    put("animated.gif", encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100,
                                loop=0), None)
    put("multipage.tif", encode(frames[0], "TIFF", save_all=True, append_images=frames[1:]), None)
    long_name = "l" * 246 + ".png"  # 250 bytes, under NAME_MAX (255)
    put(long_name, photo_png, None)
    try:
        odd = os.fsdecode(b"caf\xe9-latin1-\xff.jpg")  # not valid UTF-8
        put(odd, photo_jpeg, None)
    except (OSError, UnicodeError):  # filesystems that insist on UTF-8 names
        expected.pop(odd, None)

    # --- paths that are not readable files
    (root / "dir.jpg").mkdir(exist_ok=True)
    expected["dir.jpg"] = "is_directory"
    _symlink(root, "broken_link.jpg", "does_not_exist.jpg")
    expected["broken_link.jpg"] = "missing"
    _symlink(root, "loop_a.jpg", "loop_b.jpg")
    _symlink(root, "loop_b.jpg", "loop_a.jpg")
    expected["loop_a.jpg"] = "unreadable"
    expected["loop_b.jpg"] = "unreadable"
    if hasattr(os, "mkfifo"):
        fifo = root / "fifo.jpg"
        if not fifo.exists():
            os.mkfifo(fifo)
        expected["fifo.jpg"] = "unreadable"  # a naive open() would block forever
    restore_permissions(root)  # rebuilding into the same root must not trip over it
    locked = put(PERMISSION_DENIED_NAME, photo_png, None)
    locked.chmod(0)
    expected[PERMISSION_DENIED_NAME] = "unreadable" if permissions_enforced(root) else None
    return expected


def _symlink(root: Path, name: str, target: str) -> None:
    link = root / name
    if link.is_symlink():
        link.unlink()
    os.symlink(target, link)


def restore_permissions(root: Path) -> None:
    """Make the chmod-000 file deletable/readable again (pytest's tmp_path cleanup copes anyway)."""
    path = Path(root) / PERMISSION_DENIED_NAME
    if path.exists():
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
