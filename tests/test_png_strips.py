"""Large PNGs decoded strip by strip (maya.io.png_strips): the same pixels as a full decode, in bounded memory."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from maya.io import images, png_strips


def _png(w, h, mode="RGB", seed=0, **save) -> bytes:
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    base = (rng.random((h // 16 + 1, w // 16 + 1, channels)) * 255).astype(np.uint8).squeeze()
    a = np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)).astype(int)
    a = np.clip(a + rng.integers(-25, 25, a.shape), 0, 255).astype(np.uint8)  # every PNG filter gets used
    buf = io.BytesIO()
    Image.fromarray(a).convert(mode).save(buf, "PNG", **save)
    return buf.getvalue()


@pytest.mark.parametrize("mode,w,h,factor", [pytest.param("RGB", 1003, 777, 3, marks=pytest.mark.slow),
                                            ("L", 640, 901, 4), ("RGB", 512, 512, 2)])
def test_strips_give_the_pixels_of_a_full_decode_and_reduce(mode, w, h, factor):
    data = _png(w, h, mode, optimize=True)
    with Image.open(io.BytesIO(data)) as full:
        want = np.asarray(full.reduce(factor))
    for strip_bytes in (1, 20_000, png_strips.STRIP_BYTES):  # one box row per strip, several, one strip
        got = png_strips.decode_reduced(data, factor, strip_bytes=strip_bytes)
        assert got.mode == mode and np.array_equal(np.asarray(got), want)


@pytest.mark.parametrize("kind", ["palette", "transparency", "interlaced", "16-bit", "rgba"])
def test_pngs_it_does_not_handle_go_to_the_full_decode(kind):
    rgb = Image.open(io.BytesIO(_png(300, 200)))
    buf = io.BytesIO()
    if kind == "palette":
        rgb.convert("P").save(buf, "PNG")
    elif kind == "transparency":
        rgb.save(buf, "PNG", transparency=(0, 0, 0))
    elif kind == "interlaced":  # Pillow does not write Adam7: mark the header interlaced, CRC fixed
        import zlib

        rgb.save(buf, "PNG")
        data = bytearray(buf.getvalue())
        data[28] = 1
        data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
        buf = io.BytesIO(bytes(data))
    elif kind == "16-bit":
        Image.fromarray((np.asarray(rgb.convert("L")).astype(np.uint16) * 257)).save(buf, "PNG")
    else:
        rgb.convert("RGBA").save(buf, "PNG")
    assert png_strips.decode_reduced(buf.getvalue(), 2) is None


def test_a_png_cut_short_is_an_error_not_a_picture():
    data = _png(400, 400)
    idat = data.index(b"IDAT")
    length = int.from_bytes(data[idat - 4:idat], "big")
    cut = data[:idat + 4 + length // 2]  # half the pixel data, no CRC, no IEND
    # the chunk now claims more bytes than the file has: the full decode reports it
    assert png_strips.decode_reduced(cut, 2) is None
    with pytest.raises(images.ImageLoadError):
        images.decode_image(cut, min_side=64)


def test_decode_image_takes_the_strip_path_for_large_pngs_with_the_same_result(monkeypatch):
    data = _png(900, 700, optimize=True)
    whole = images.decode_image(data, min_side=100)
    monkeypatch.setattr(images, "PNG_STRIP_MIN_PIXELS", 0)
    stripped = images.decode_image(data, min_side=100)
    assert (stripped.width, stripped.height, stripped.format) == (whole.width, whole.height, "PNG")
    assert np.array_equal(np.asarray(stripped.image), np.asarray(whole.image))
