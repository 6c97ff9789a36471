"""Fuzz maya.io.images.decode_image: mutated real encodings and random bytes never escape the contract.

The contract: ``decode_image`` returns a LoadedImage holding an RGB image, or raises
ImageLoadError with a known reason -- nothing else, whatever the bytes.

By default a small, derandomized run (same examples every time, a few seconds).
``MAYA_FUZZ_EXAMPLES=5000 pytest tests/test_imageio_fuzz.py`` explores that many fresh random
examples per test instead.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from functools import lru_cache

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from maya.io.images import REASONS, ImageLoadError, LoadedImage, decode_image
from tests.hostile import encode, upright_photo

_EXAMPLES = os.environ.get("MAYA_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_EXAMPLES) if _EXAMPLES else 300,
    derandomize=not _EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Mutated headers may declare any size; a small limit keeps each example fast and light.
MAX_PIXELS = 4_000_000
MIN_SIDE = 16


@lru_cache(maxsize=1)
def seeds() -> dict[str, bytes]:
    """Valid encodings of a small real photo in every decodable format (and some variants)."""
    photo = upright_photo().resize((48, 32))
    exif = Image.Exif()
    exif[0x0112] = 6
    grey16 = Image.fromarray((np.asarray(photo.convert("L"), np.uint16) * 257))
    frames = [photo, photo.rotate(90), photo.convert("L").convert("RGB")]
    return {
        "png": encode(photo, "PNG"),
        "png_rgba": encode(photo.convert("RGBA"), "PNG"),
        "png_16bit": encode(grey16, "PNG"),
        "png_palette": encode(photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG",
                              transparency=0),
        "jpeg": encode(photo, "JPEG", quality=85),
        "jpeg_progressive_exif": encode(photo, "JPEG", quality=85, progressive=True, exif=exif),
        "jpeg_cmyk": encode(photo.convert("CMYK"), "JPEG"),
        "gif_animated": encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "tiff_multipage": encode(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
        "tiff_deflate": encode(photo, "TIFF", compression="tiff_adobe_deflate"),
        "webp": encode(photo, "WEBP", quality=80),
        "webp_lossless": encode(photo.convert("RGBA"), "WEBP", lossless=True),
        "bmp": encode(photo, "BMP"),
    }


@st.composite
def mutated(draw) -> bytes:
    """A valid encoding with 1-4 byte-level mutations: flip, overwrite, insert, delete, truncate."""
    data = bytearray(seeds()[draw(st.sampled_from(sorted(seeds())))])
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate"]))
        # Headers are where parsers break: bias positions towards the start.
        limit = draw(st.sampled_from([64, 512, len(data)]))
        pos = draw(st.integers(0, min(limit, len(data)) - 1))
        if kind == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[pos:pos + len(chunk)] = chunk
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        else:
            del data[pos:]
    return bytes(data)


def check_contract(data: bytes, warnings_as_errors: bool) -> None:
    with warnings.catch_warnings():
        # Pillow warns about odd EXIF, palettes, bombs...: either way the contract must hold.
        warnings.simplefilter("error" if warnings_as_errors else "ignore")
        try:
            loaded = decode_image(data, min_side=MIN_SIDE, max_pixels=MAX_PIXELS)
        except ImageLoadError as e:
            assert e.reason in REASONS
            assert "\n" not in str(e) and str(e).startswith(e.reason + ": ")
            return
    assert isinstance(loaded, LoadedImage)
    assert loaded.image.mode == "RGB"
    assert loaded.sha256 == hashlib.sha256(data).hexdigest()
    assert loaded.size_bytes == len(data)
    assert 0 < loaded.width * loaded.height <= MAX_PIXELS
    w, h = loaded.image.size
    assert 0 < w <= max(loaded.width, loaded.height) and 0 < h <= max(loaded.width, loaded.height)
    assert min(w, h) >= min(MIN_SIDE, loaded.width, loaded.height)
    loaded.image.tobytes()  # the pixels really exist


def test_seeds_decode():
    for name, data in seeds().items():
        loaded = decode_image(data)
        assert loaded.image.mode == "RGB", name
        assert {loaded.width, loaded.height} == {48, 32}, name


@FUZZ
@given(data=mutated(), warnings_as_errors=st.booleans())
def test_mutated_encodings_load_or_raise_image_load_error(data, warnings_as_errors):
    check_contract(data, warnings_as_errors)


@FUZZ
@given(data=st.one_of(
    st.binary(max_size=2048),
    # Random bodies behind real signatures reach deeper into each parser.
    st.tuples(st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"II*\x00", b"MM\x00*",
                               b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"BM"]),
              st.binary(max_size=512)).map(lambda t: t[0] + t[1]),
), warnings_as_errors=st.booleans())
def test_random_bytes_load_or_raise_image_load_error(data, warnings_as_errors):
    check_contract(data, warnings_as_errors)
