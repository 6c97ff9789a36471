"""Seeded, named image edits for near-duplicate benchmarks (Copydays / DISC21 style).

Each edit is a *kind* (``"jpeg_quality"``, ``"crop_center"``, ...) applied at a *level*
(``"light"``, ``"medium"``, ``"strong"``) with parameters drawn from a caller-supplied
``numpy.random.Generator``. The result is a :class:`Variant`: the encoded bytes of the edited
image plus the exact parameters used, as plain JSON-ready data.

Determinism: the same image pixels, kind, level and generator state give byte-identical
``Variant.data`` (fixed encoder settings, no metadata, no timestamps). Determinism holds for a
fixed Pillow / libjpeg / libwebp / zlib build; another build may encode the same pixels to other
bytes.

Encoding: the output is PNG (lossless) unless the kind is itself an encoding (``jpeg_quality`` ->
JPEG, ``webp`` -> WebP, ``png_reencode`` -> PNG). PNG is written by :func:`encode_png`, a small
writer (numpy "Up" filter + zlib RLE), because Pillow's PNG encoder spends most of its time in
per-row adaptive filter selection: on a 1 MP photo on the 2-core dev box Pillow's PNG at
``compress_level=1`` took 47-75 ms, this writer 16-25 ms for files about 10 % larger.

Only Pillow and numpy are used.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import struct
import threading
import zlib
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

LEVELS: tuple[str, ...] = ("light", "medium", "strong")

ENCODING_KINDS: tuple[str, ...] = ("jpeg_quality", "webp", "png_reencode")

# Kinds whose result does not depend on the level (a mirror is a mirror).
LEVEL_FREE_KINDS: tuple[str, ...] = ("rotate_90", "hflip", "grayscale")

# A mirror or a quarter turn moves every pixel; it is never a "light" copy, so the light
# tier does not offer them (make_variant still accepts them at any level).
_NOT_LIGHT: frozenset[str] = frozenset({"rotate_90", "hflip"})

# Chains take at most one kind per family: two crops or two resizes are one crop or resize
# with other numbers, grayscale makes saturation and hue no-ops, and one file has one encoding.
_CHAIN_FAMILY: dict[str, str] = {
    "resize_down": "resize",
    "resize_up": "resize",
    "aspect_ratio": "resize",
    "crop_center": "crop",
    "crop_random": "crop",
    "grayscale": "colour",
    "saturation": "colour",
    "hue": "colour",
    "jpeg_quality": "encoding",
    "webp": "encoding",
    "png_reencode": "encoding",
    "pad_border": "frame",
    "screenshot": "frame",
}

_WEBP_METHOD = 0  # libwebp speed/quality trade-off; 0 is fastest (16 ms vs 66 ms at 4, 1 MP).
_JPEG_SUBSAMPLING = "4:2:0"  # Pillow's and most cameras' default

# Parameter ranges per level: (low, high), sampled uniformly. Ranges of the three levels do not
# overlap, so a strong edit is always stronger than a light one of the same kind.
_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    # linear scale factor of both sides
    "resize_down": {"light": (0.7, 0.9), "medium": (0.45, 0.7), "strong": (0.2, 0.45)},
    "resize_up": {"light": (1.1, 1.25), "medium": (1.25, 1.6), "strong": (1.6, 2.0)},
    # factor applied to one side only (the other is kept)
    "aspect_ratio": {"light": (0.85, 0.95), "medium": (0.7, 0.85), "strong": (0.5, 0.7)},
    "jpeg_quality": {"light": (70, 90), "medium": (35, 70), "strong": (10, 35)},
    "webp": {"light": (70, 90), "medium": (35, 70), "strong": (5, 35)},
    # number of palette colours (light is lossless, no palette)
    "png_reencode": {"medium": (128, 256), "strong": (16, 64)},
    # fraction of the image area kept
    "crop_center": {"light": (0.85, 0.95), "medium": (0.62, 0.78), "strong": (0.42, 0.58)},
    "crop_random": {"light": (0.85, 0.95), "medium": (0.62, 0.78), "strong": (0.42, 0.58)},
    # |angle| in degrees
    "rotate_small": {"light": (1.0, 3.0), "medium": (3.0, 8.0), "strong": (8.0, 15.0)},
    # d in factor = (1 + d) or 1 / (1 + d)
    "brightness": {"light": (0.05, 0.15), "medium": (0.15, 0.35), "strong": (0.35, 0.6)},
    "contrast": {"light": (0.1, 0.2), "medium": (0.2, 0.45), "strong": (0.45, 0.8)},
    "saturation": {"light": (0.1, 0.25), "medium": (0.25, 0.6), "strong": (0.6, 1.5)},
    "gamma": {"light": (0.1, 0.25), "medium": (0.25, 0.6), "strong": (0.6, 1.5)},
    # |hue rotation| in degrees
    "hue": {"light": (5.0, 15.0), "medium": (15.0, 45.0), "strong": (45.0, 180.0)},
    # Gaussian radius in pixels per 1000 px of the short side
    # (at least 0.5 px: below that Pillow's blur hardly changes a pixel)
    "blur": {"light": (1.0, 2.0), "medium": (2.0, 4.5), "strong": (4.5, 9.0)},
    # UnsharpMask percent
    "sharpen": {"light": (40, 90), "medium": (90, 180), "strong": (180, 350)},
    # Gaussian noise sigma in 8-bit grey levels
    "noise": {"light": (2.0, 5.0), "medium": (5.0, 12.0), "strong": (12.0, 25.0)},
    # block side as a fraction of the short side (gaps keep the whole-pixel blocks apart)
    "pixelate": {"light": (0.003, 0.006), "medium": (0.008, 0.014), "strong": (0.018, 0.03)},
    # text height as a fraction of the short side
    "text_overlay": {"light": (0.03, 0.05), "medium": (0.05, 0.08), "strong": (0.08, 0.12)},
    # shape size as a fraction of the short side
    "shape_overlay": {"light": (0.04, 0.08), "medium": (0.08, 0.14), "strong": (0.14, 0.22)},
    # opacity of the mark, 0..1
    "watermark": {"light": (0.15, 0.3), "medium": (0.3, 0.5), "strong": (0.5, 0.75)},
    # border width as a fraction of the short side
    "pad_border": {"light": (0.02, 0.06), "medium": (0.06, 0.15), "strong": (0.15, 0.3)},
    # scale of the embedded picture
    "screenshot": {"light": (0.9, 1.0), "medium": (0.7, 0.9), "strong": (0.45, 0.7)},
    # inward corner displacement as a fraction of the side
    "perspective": {"light": (0.02, 0.05), "medium": (0.05, 0.1), "strong": (0.1, 0.18)},
}

_TEXT_LINES = {"light": (1, 1), "medium": (2, 3), "strong": (4, 6)}
_SHAPE_COUNT = {"light": (1, 2), "medium": (3, 6), "strong": (7, 14)}

_WORDS = (
    "sunset", "holiday", "friends", "coffee", "morning", "breaking", "news", "sale", "today",
    "summer", "winter", "city", "lights", "beach", "party", "family", "weekend", "vibes",
    "throwback", "travel", "food", "love", "happy", "birthday", "amazing", "view", "look",
    "this", "best", "day", "ever", "when", "you", "finally", "see", "it", "original",
    "photo", "credit", "exclusive", "limited", "offer", "free", "shipping", "new", "post",
    "story", "follow", "share", "like", "wow", "mood", "goals", "classic", "vintage",
    "again", "nope", "yes", "monday", "friday", "weather", "report", "live", "update",
)

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Variant:
    """An edited copy of an image, encoded and ready to store.

    data:   the encoded image file (PNG, JPEG or WebP bytes).
    ext:    "png" | "jpg" | "webp".
    kind:   the edit, e.g. "jpeg_quality", or "chain:crop_center+jpeg_quality".
    params: JSON-serialisable parameters actually used; always has "level"; chains have
            "steps": [{"kind": ..., "params": {...}}, ...] in the order applied.
    """

    data: bytes
    ext: str
    kind: str
    params: dict

    @property
    def sha256(self) -> str:
        """Hex sha256 of ``data`` (the variant's content address)."""
        return hashlib.sha256(self.data).hexdigest()

    def decode(self) -> Image.Image:
        """Decode ``data`` into a loaded PIL image (mode "RGB", "L" or "P")."""
        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image


# --------------------------------------------------------------------------- sampling helpers


def _uniform(rng: np.random.Generator, low: float, high: float, ndigits: int = 4) -> float:
    """One uniform draw in [low, high), rounded so the recorded value is the value used."""
    return round(float(rng.uniform(low, high)), ndigits)


def _integer(rng: np.random.Generator, low: int, high: int) -> int:
    """One uniform integer in [low, high] (both ends included)."""
    return int(rng.integers(int(low), int(high) + 1))


def _choice(rng: np.random.Generator, options: tuple):
    return options[int(rng.integers(len(options)))]


def _range(kind: str, level: str) -> tuple[float, float]:
    return _RANGES[kind][level]


def _symmetric_factor(rng: np.random.Generator, kind: str, level: str) -> float:
    """A factor (1 + d) or 1 / (1 + d) with d drawn from the level's range: brighter or darker
    by the same amount on a log scale."""
    d = _uniform(rng, *_range(kind, level))
    up = bool(rng.integers(2))
    return round(1.0 + d, 4) if up else round(1.0 / (1.0 + d), 4)


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, size=3))


def _as_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


_fonts_of_this_thread = threading.local()


def _font(size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in font at ``size_px`` pixels (no font files needed).

    Cached per thread: a FreeType face must not render in two threads at once.
    """
    size_px = max(6, int(size_px))
    cache = _fonts_of_this_thread.__dict__.setdefault("by_size", {})
    if size_px not in cache:
        cache[size_px] = ImageFont.load_default(size=size_px)
    return cache[size_px]


def _random_words(rng: np.random.Generator, low: int, high: int) -> str:
    return " ".join(_choice(rng, _WORDS) for _ in range(_integer(rng, low, high)))


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


# --------------------------------------------------------------------------- the edits
#
# Every edit has the signature (image, rng, level) -> (edited image, params, encoding) where
# encoding is None for pixel edits and a dict for the encoding kinds. Draw order from the
# rng is part of the output: changing it changes every variant, so keep it stable.

_EditResult = tuple[Image.Image, dict, dict | None]


def _resize(image: Image.Image, rng: np.random.Generator, level: str, kind: str) -> _EditResult:
    scale = _uniform(rng, *_range(kind, level))
    resample = _choice(rng, ("bilinear", "bicubic", "lanczos"))
    size = (max(8, round(image.width * scale)), max(8, round(image.height * scale)))
    out = image.resize(size, _RESAMPLE[resample])
    return out, {"scale": scale, "resample": resample, "size": list(size)}, None


def _resize_down(image, rng, level):
    return _resize(image, rng, level, "resize_down")


def _resize_up(image, rng, level):
    return _resize(image, rng, level, "resize_up")


def _aspect_ratio(image, rng, level):
    factor = _uniform(rng, *_range("aspect_ratio", level))
    axis = _choice(rng, ("width", "height"))
    w, h = image.size
    size = (max(8, round(w * factor)), h) if axis == "width" else (w, max(8, round(h * factor)))
    out = image.resize(size, Image.Resampling.BICUBIC)
    return out, {"axis": axis, "factor": factor, "size": list(size)}, None


def _jpeg_quality(image, rng, level):
    quality = _integer(rng, *_range("jpeg_quality", level))
    encoding = {"format": "jpg", "quality": quality, "subsampling": _JPEG_SUBSAMPLING}
    return image, {"quality": quality, "subsampling": _JPEG_SUBSAMPLING}, encoding


def _webp(image, rng, level):
    quality = _integer(rng, *_range("webp", level))
    encoding = {"format": "webp", "quality": quality, "method": _WEBP_METHOD}
    return image, {"quality": quality, "method": _WEBP_METHOD}, encoding


def _png_reencode(image, rng, level):
    if level == "light":
        # Same pixels, other bytes: an exact duplicate a byte hash cannot see.
        row_filter = _choice(rng, ("up", "sub"))
        params = {"palette_colors": None, "row_filter": row_filter}
        return image, params, {"format": "png", "row_filter": row_filter}
    # An 8-bit palette PNG ("PNG-8"). Pillow's fast octree quantizer does not dither.
    colours = _integer(rng, *_range("png_reencode", level))
    out = _as_rgb(image).quantize(colours, method=Image.Quantize.FASTOCTREE)
    params = {"palette_colors": colours, "quantizer": "fastoctree", "dither": "none"}
    return out, params, {"format": "png"}


def _crop_box_center(w: int, h: int, area: float) -> tuple[int, int, int, int]:
    side = math.sqrt(area)
    cw, ch = max(1, round(w * side)), max(1, round(h * side))
    left, top = (w - cw) // 2, (h - ch) // 2
    return left, top, left + cw, top + ch


def _crop_center(image, rng, level):
    area = _uniform(rng, *_range("crop_center", level))
    box = _crop_box_center(image.width, image.height, area)
    return image.crop(box), {"area": area, "box": list(box)}, None


def _crop_random(image, rng, level):
    area = _uniform(rng, *_range("crop_random", level))
    # Aspect of the crop relative to the image's, log-uniform in [0.8, 1.25].
    aspect = round(float(np.exp(rng.uniform(math.log(0.8), math.log(1.25)))), 4)
    w, h = image.size
    cw = min(w, w * math.sqrt(area * aspect))
    ch = min(h, area * w * h / cw)
    cw = min(w, area * w * h / ch)
    cw, ch = max(1, round(cw)), max(1, round(ch))
    left = _integer(rng, 0, w - cw)
    top = _integer(rng, 0, h - ch)
    box = (left, top, left + cw, top + ch)
    return image.crop(box), {"area": area, "aspect": aspect, "box": list(box)}, None


def _rotate_small(image, rng, level):
    magnitude = _uniform(rng, *_range("rotate_small", level), ndigits=3)
    angle = magnitude if rng.integers(2) else -magnitude
    mode = _choice(rng, ("expand", "crop"))
    if mode == "expand":
        fill = _choice(rng, ((0, 0, 0), (255, 255, 255)))
        out = _as_rgb(image).rotate(
            angle, Image.Resampling.BILINEAR, expand=True, fillcolor=fill
        )
        return out, {"angle": angle, "mode": mode, "fill": list(fill)}, None
    # Largest centred crop with the image's aspect ratio that holds no fill pixels.
    w, h = image.size
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    keep = min(w / (w * c + h * s), h / (w * s + h * c))
    rotated = image.rotate(angle, Image.Resampling.BILINEAR, expand=False)
    # 2 px inside the exact rectangle: bilinear sampling blends in fill at the very edge.
    cw, ch = max(1, math.floor(w * keep) - 4), max(1, math.floor(h * keep) - 4)
    left, top = (w - cw) // 2, (h - ch) // 2
    out = rotated.crop((left, top, left + cw, top + ch))
    return out, {"angle": angle, "mode": mode, "kept_side_fraction": round(keep, 4)}, None


def _rotate_90(image, rng, level):
    angle = _choice(rng, (90, 180, 270))
    method = {
        90: Image.Transpose.ROTATE_90,
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_270,
    }[angle]
    return image.transpose(method), {"angle": angle}, None


def _hflip(image, rng, level):
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), {}, None


def _grayscale(image, rng, level):
    # A one-channel ("L") file, as real grayscale copies are; ITU-R 601 luma.
    return image.convert("L"), {"mode": "L"}, None


def _lut_all_channels(image: Image.Image, lut: list[int]) -> Image.Image:
    bands = len(image.getbands())
    return image.point(lut * bands)


def _brightness(image, rng, level):
    factor = _symmetric_factor(rng, "brightness", level)
    lut = [min(255, round(v * factor)) for v in range(256)]
    return _lut_all_channels(image, lut), {"factor": factor}, None


def _contrast(image, rng, level):
    factor = _symmetric_factor(rng, "contrast", level)
    return ImageEnhance.Contrast(image).enhance(factor), {"factor": factor}, None


def _saturation(image, rng, level):
    factor = _symmetric_factor(rng, "saturation", level)
    return ImageEnhance.Color(_as_rgb(image)).enhance(factor), {"factor": factor}, None


def _hue(image, rng, level):
    magnitude = _uniform(rng, *_range("hue", level), ndigits=2)
    degrees = magnitude if rng.integers(2) else -magnitude
    # The CSS/SVG hue-rotate matrix: rotates hue around the luma axis, keeps luma.
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    matrix = (
        0.213 + c * 0.787 - s * 0.213, 0.715 - c * 0.715 - s * 0.715, 0.072 - c * 0.072 + s * 0.928, 0,
        0.213 - c * 0.213 + s * 0.143, 0.715 + c * 0.285 + s * 0.140, 0.072 - c * 0.072 - s * 0.283, 0,
        0.213 - c * 0.213 - s * 0.787, 0.715 - c * 0.715 + s * 0.715, 0.072 + c * 0.928 + s * 0.072, 0,
    )  # fmt: skip
    out = _as_rgb(image).convert("RGB", matrix)
    return out, {"degrees": degrees, "method": "css_hue_rotate_matrix"}, None


def _gamma(image, rng, level):
    gamma = _symmetric_factor(rng, "gamma", level)
    lut = [round(255.0 * (v / 255.0) ** gamma) for v in range(256)]
    return _lut_all_channels(image, lut), {"gamma": gamma}, None


def _blur(image, rng, level):
    per_1000 = _uniform(rng, *_range("blur", level), ndigits=3)
    radius = round(max(0.5, per_1000 * min(image.size) / 1000.0), 3)
    out = image.filter(ImageFilter.GaussianBlur(radius))
    return out, {"radius_px": radius}, None


def _sharpen(image, rng, level):
    percent = _integer(rng, *_range("sharpen", level))
    radius = round(max(1.0, 2.0 * min(image.size) / 1000.0), 3)
    threshold = _integer(rng, 0, 3)
    out = image.filter(ImageFilter.UnsharpMask(radius=radius, percent=percent, threshold=threshold))
    return out, {"percent": percent, "radius_px": radius, "threshold": threshold}, None


@functools.lru_cache(maxsize=1)
def _normal_quantiles() -> np.ndarray:
    """The 65,536 mid-quantiles of N(0, 1), float32; a uint16 draw indexes one of them."""
    inverse_cdf = NormalDist().inv_cdf
    return np.array([inverse_cdf((k + 0.5) / 65536.0) for k in range(65536)], dtype=np.float32)


def _noise(image, rng, level):
    sigma = _uniform(rng, *_range("noise", level), ndigits=3)
    seed = int(rng.integers(2**63))
    pixels = np.asarray(image)
    # Gaussian noise by inverse-CDF lookup of uint16 draws: the same distribution (to 1/65536
    # in probability) as rng.standard_normal, about 3x faster on the 2-core box, and rounded
    # to whole grey levels as the 8-bit output needs anyway.
    table = np.round(_normal_quantiles() * sigma).astype(np.int16)
    draws = np.random.default_rng(seed).integers(0, 65536, size=pixels.shape, dtype=np.uint16)
    noisy = table[draws]
    noisy += pixels
    np.clip(noisy, 0, 255, out=noisy)
    out = Image.fromarray(noisy.astype(np.uint8))
    return out, {"sigma": sigma, "noise_seed": seed, "method": "inverse_cdf_uint16"}, None


def _pixelate(image, rng, level):
    low, high = _range("pixelate", level)
    short = min(image.size)
    # Drawn as whole pixels, so that equal params always mean equal output.
    block = _integer(rng, max(2, round(low * short)), max(2, round(high * short)))
    w, h = image.size
    small = image.resize((max(1, round(w / block)), max(1, round(h / block))), Image.Resampling.BOX)
    out = small.resize((w, h), Image.Resampling.NEAREST)
    return out, {"block_px": block}, None


def _text_overlay(image, rng, level):
    out = _as_rgb(image).copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    height_fraction = _uniform(rng, *_range("text_overlay", level))
    size_px = max(8, round(height_fraction * min(w, h)))
    font = _font(size_px)
    lines = []
    for _ in range(_integer(rng, *_TEXT_LINES[level])):
        text = _random_words(rng, 1, 4)
        if rng.integers(2):
            text = text.upper()
        colour = _random_colour(rng)
        stroke = size_px // 12 if rng.integers(2) else 0
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
        x = _integer(rng, 0, max(0, w - (right - left)))
        y = _integer(rng, 0, max(0, h - (bottom - top)))
        outline = (0, 0, 0) if sum(colour) > 384 else (255, 255, 255)
        draw.text((x, y), text, fill=colour, font=font, stroke_width=stroke, stroke_fill=outline)
        lines.append({"text": text, "xy": [x, y], "colour": list(colour), "stroke_px": stroke})
    return out, {"font_px": size_px, "lines": lines}, None


def _star_points(cx: float, cy: float, radius: float, rotation: float) -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        r = radius if i % 2 == 0 else radius * 0.45
        a = rotation + i * math.pi / 5
        points.append((cx + r * math.sin(a), cy - r * math.cos(a)))
    return points


def _draw_smiley(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 204, 0), outline=(120, 80, 0))
    eye = max(1.0, r * 0.13)
    for ex in (cx - r * 0.35, cx + r * 0.35):
        draw.ellipse((ex - eye, cy - r * 0.3 - eye, ex + eye, cy - r * 0.3 + eye), fill=(60, 40, 0))
    mouth = (cx - r * 0.55, cy - r * 0.45, cx + r * 0.55, cy + r * 0.6)
    draw.arc(mouth, 20, 160, fill=(60, 40, 0), width=max(1, round(r * 0.1)))


def _shape_overlay(image, rng, level):
    out = _as_rgb(image).copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    shapes = []
    for _ in range(_integer(rng, *_SHAPE_COUNT[level])):
        shape = _choice(rng, ("smiley", "circle", "star", "rect"))
        size_fraction = _uniform(rng, *_range("shape_overlay", level))
        r = max(2.0, size_fraction * min(w, h) / 2)
        cx, cy = _uniform(rng, 0, w, 1), _uniform(rng, 0, h, 1)
        colour = _random_colour(rng)
        if shape == "smiley":
            _draw_smiley(draw, cx, cy, r)
        elif shape == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        elif shape == "star":
            draw.polygon(_star_points(cx, cy, r, _uniform(rng, 0, math.pi)), fill=colour)
        else:
            draw.rectangle((cx - r, cy - r * 0.6, cx + r, cy + r * 0.6), fill=colour)
        shapes.append(
            {"shape": shape, "center": [cx, cy], "radius_px": round(r, 2), "colour": list(colour)}
        )
    return out, {"shapes": shapes}, None


def _mark_size(text: str, font, ring: int) -> tuple[int, int, int, int]:
    """(width, height, bbox left, bbox top) of a watermark: optional ring "logo", then text."""
    left, top, right, bottom = font.getbbox(text)
    gap = ring // 4 if ring else 0
    return (right - left) + ring + gap, max(bottom - top, ring), left, top


def _draw_mark(draw, xy, text, font, ring: int, alpha: int) -> None:
    """Draw a watermark on an "L" mask at ``xy`` (its top-left) with value ``alpha``."""
    x, y = xy
    width, height, left, top = _mark_size(text, font, ring)
    text_x = x
    if ring:
        ring_y = y + (height - ring) // 2
        draw.ellipse((x, ring_y, x + ring, ring_y + ring), outline=alpha, width=max(2, ring // 8))
        text_x = x + ring + ring // 4
    text_height = font.getbbox(text)[3] - top
    draw.text((text_x - left, y + (height - text_height) // 2 - top), text, fill=alpha, font=font)


def _watermark(image, rng, level):
    out = _as_rgb(image).copy()
    w, h = out.size
    opacity = _uniform(rng, *_range("watermark", level), ndigits=3)
    if level == "light":
        layout = "corner"
    elif level == "medium":
        layout = _choice(rng, ("corner", "tiled"))
    else:
        layout = "tiled"
    content = _choice(rng, ("text", "logo"))
    text = "\u00a9 " + _random_words(rng, 1, 2) if content == "text" else _random_words(rng, 1, 1)
    colour = _choice(rng, ((255, 255, 255), (0, 0, 0), (200, 200, 200)))
    alpha = max(1, round(255 * opacity))
    # Text height: 5 % (corner) or 4 % (tiled) of the short side, x1 / x1.5 / x2 by level.
    base_fraction = 0.05 if layout == "corner" else 0.04
    size_px = max(8, round(min(w, h) * base_fraction * (1 + 0.5 * LEVELS.index(level))))
    font = _font(size_px)
    ring = round(size_px * 1.2) if content == "logo" else 0
    mark_w, mark_h, _, _ = _mark_size(text, font, ring)
    params = {"opacity": opacity, "layout": layout, "content": content, "text": text,
              "colour": list(colour), "font_px": size_px}  # fmt: skip
    if layout == "corner":
        mask = Image.new("L", (w, h), 0)
        margin = max(4, round(0.03 * min(w, h)))
        corner = _choice(rng, ("top_left", "top_right", "bottom_left", "bottom_right"))
        x = margin if corner.endswith("left") else max(0, w - margin - mark_w)
        y = margin if corner.startswith("top") else max(0, h - margin - mark_h)
        _draw_mark(ImageDraw.Draw(mask), (x, y), text, font, ring, alpha)
        params["corner"] = corner
    else:
        # Marks on a grid over a canvas the size of the diagonal, rotated, then cut to the
        # image, so they run diagonally and reach the corners too.
        angle = _uniform(rng, 20, 45, 2) * (1 if rng.integers(2) else -1)
        diag = math.ceil(math.hypot(w, h))
        mask = Image.new("L", (diag, diag), 0)
        draw = ImageDraw.Draw(mask)
        spacing = 3 if level == "medium" else 2  # in text heights
        step_x, step_y = mark_w + size_px * spacing, mark_h + size_px * (spacing + 1)
        for row, y in enumerate(range(0, diag, step_y)):
            for x in range(-(step_x // 2) * (row % 2), diag, step_x):
                _draw_mark(draw, (x, y), text, font, ring, alpha)
        mask = mask.rotate(angle, Image.Resampling.BILINEAR)
        left, top = (diag - w) // 2, (diag - h) // 2
        mask = mask.crop((left, top, left + w, top + h))
        params["angle"] = angle
    out.paste(colour, (0, 0, w, h), mask)
    return out, params, None


def _pad_border(image, rng, level):
    low, high = _range("pad_border", level)
    short = min(image.size)
    layout = _choice(rng, ("uniform", "letterbox", "pillarbox", "independent"))
    if layout == "independent":
        widths = [round(_uniform(rng, low, high) * short) for _ in range(4)]
    else:
        width = round(_uniform(rng, low, high) * short)
        widths = {
            "uniform": [width] * 4,
            "letterbox": [0, width, 0, width],
            "pillarbox": [width, 0, width, 0],
        }[layout]
    colour_name = _choice(rng, ("black", "white", "random"))
    colour = {"black": (0, 0, 0), "white": (255, 255, 255)}.get(colour_name) or _random_colour(rng)
    left, top, right, bottom = widths
    source = _as_rgb(image)
    out = Image.new("RGB", (image.width + left + right, image.height + top + bottom), colour)
    out.paste(source, (left, top))
    params = {"layout": layout, "left_top_right_bottom": widths, "colour": list(colour)}
    return out, params, None


def _screenshot(image, rng, level):
    scale = _uniform(rng, *_range("screenshot", level))
    layout = _choice(rng, ("app_window", "meme"))
    w, h = image.size
    sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
    picture = _as_rgb(image).resize((sw, sh), Image.Resampling.BILINEAR)
    params = {"layout": layout, "scale": scale, "picture_size": [sw, sh]}
    if layout == "app_window":
        dark = bool(rng.integers(2))
        background = (32, 33, 36) if dark else (242, 242, 242)
        bar_colour = (53, 54, 58) if dark else (222, 222, 222)
        bar = max(12, round(h * _uniform(rng, 0.05, 0.09)))
        margin = round(w * (1.0 - scale) / 2) + max(2, round(0.01 * w))
        canvas = Image.new("RGB", (sw + 2 * margin, sh + bar + 2 * margin), background)
        draw = ImageDraw.Draw(canvas)
        draw.rectangle((0, 0, canvas.width, bar), fill=bar_colour)
        dot = max(2, bar // 5)
        for i, dot_colour in enumerate(((255, 95, 86), (255, 189, 46), (39, 201, 63))):
            cx, cy = bar * 0.6 + i * dot * 3, bar / 2
            draw.ellipse((cx - dot, cy - dot, cx + dot, cy + dot), fill=dot_colour)
        title = _random_words(rng, 1, 3) + _choice(rng, (".jpg", ".png", " - Photos", " - Viewer"))
        font = _font(max(8, bar // 2))
        draw.text((bar * 0.6 + dot * 9, bar / 2), title, font=font, anchor="lm",
                  fill=(230, 230, 230) if dark else (40, 40, 40))  # fmt: skip
        canvas.paste(picture, (margin, bar + margin))
        params.update({"dark": dark, "bar_px": bar, "margin_px": margin, "title": title})
    else:
        band_fraction = _uniform(rng, 0.12, 0.22)
        band = max(10, round(sh * band_fraction))
        white_bands = bool(rng.integers(2))
        white, black = (255, 255, 255), (0, 0, 0)
        band_colour, text_colour = (white, black) if white_bands else (black, white)
        canvas = Image.new("RGB", (sw, sh + 2 * band), band_colour)
        canvas.paste(picture, (0, band))
        draw = ImageDraw.Draw(canvas)
        captions = [_random_words(rng, 2, 4).upper(), _random_words(rng, 2, 4).upper()]
        for caption, cy in zip(captions, (band / 2, sh + band * 1.5)):
            # Shrink the caption until it fits the width, as meme tools do.
            size_px = max(8, round(band * 0.45))
            while size_px > 8 and draw.textlength(caption, font=_font(size_px)) > 0.94 * sw:
                size_px = max(8, round(size_px * 0.85))
            draw.text((sw / 2, cy), caption, font=_font(size_px), anchor="mm", fill=text_colour)
        params.update({"band_px": band, "white_bands": white_bands, "captions": captions})
    return canvas, params, None


def perspective_coefficients(
    output_corners: np.ndarray, input_corners: np.ndarray
) -> tuple[float, ...]:
    """The 8 coefficients of Pillow's ``Image.transform(..., Image.PERSPECTIVE, coeffs)``.

    output_corners, input_corners: shape (4, 2), pixel (x, y). The transform maps each output
    corner to its input corner: x_in = (a x + b y + c) / (g x + h y + 1), y_in likewise with
    (d, e, f). Solved exactly as an 8x8 linear system.
    """
    rows, rhs = [], []
    for (x, y), (u, v) in zip(np.asarray(output_corners, float), np.asarray(input_corners, float)):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs.extend([u, v])
    return tuple(float(c) for c in np.linalg.solve(np.array(rows), np.array(rhs)))


def _perspective(image, rng, level):
    w, h = image.size
    low, high = _range("perspective", level)
    # Each corner of the picture moves inward by its own amount: a photo of a print or screen
    # taken slightly off-axis.
    moves = [[_uniform(rng, low, high), _uniform(rng, low, high)] for _ in range(4)]
    source = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=float)
    signs = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=float)
    target = source + signs * np.array(moves) * np.array([w, h])
    coefficients = perspective_coefficients(target, source)
    out = image.transform(
        (w, h), Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BILINEAR
    )
    params = {"corner_moves": moves, "output_corners": np.round(target, 2).tolist()}
    return out, params, None


_EDITS: dict[str, Callable[[Image.Image, np.random.Generator, str], _EditResult]] = {
    "resize_down": _resize_down,
    "resize_up": _resize_up,
    "aspect_ratio": _aspect_ratio,
    "jpeg_quality": _jpeg_quality,
    "webp": _webp,
    "png_reencode": _png_reencode,
    "crop_center": _crop_center,
    "crop_random": _crop_random,
    "rotate_small": _rotate_small,
    "rotate_90": _rotate_90,
    "hflip": _hflip,
    "grayscale": _grayscale,
    "brightness": _brightness,
    "contrast": _contrast,
    "saturation": _saturation,
    "hue": _hue,
    "gamma": _gamma,
    "blur": _blur,
    "sharpen": _sharpen,
    "noise": _noise,
    "pixelate": _pixelate,
    "text_overlay": _text_overlay,
    "shape_overlay": _shape_overlay,
    "watermark": _watermark,
    "pad_border": _pad_border,
    "screenshot": _screenshot,
    "perspective": _perspective,
}

KINDS: tuple[str, ...] = tuple(_EDITS)


# --------------------------------------------------------------------------- public API


def kinds_for_level(level: str) -> tuple[str, ...]:
    """The kinds to sample at ``level``, in ``KINDS`` order.

    "medium" and "strong" offer every kind; "light" leaves out hflip and rotate_90 (they move
    every pixel, so no copy made with them is light). ``make_variant`` accepts any kind at any
    level regardless.
    """
    _check_level(level)
    if level == "light":
        return tuple(k for k in KINDS if k not in _NOT_LIGHT)
    return KINDS


def make_variant(
    image: Image.Image, kind: str, rng: np.random.Generator, level: str = "medium"
) -> Variant:
    """Apply one named edit to ``image`` and encode the result.

    image: RGB PIL image (other modes are converted). kind: one of ``KINDS``. rng: advanced
    by the draws the edit makes. level: one of ``LEVELS``.
    Returns a Variant whose ``params`` hold "level" and every drawn parameter.
    """
    _check_level(level)
    if kind not in _EDITS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    edited, params, encoding = _EDITS[kind](_as_rgb(image), rng, level)
    data, ext = _encode(edited, encoding)
    return Variant(data=data, ext=ext, kind=kind, params=_plain({"level": level, **params}))


def make_chain(
    image: Image.Image, rng: np.random.Generator, level: str, length: int | None = None
) -> Variant:
    """Apply ``length`` (default: 2 or 3, drawn from ``rng``) distinct kinds in sequence.

    Kinds come from ``kinds_for_level(level)``, at most one per family (one resize, one crop,
    one colour edit among grayscale/saturation/hue, one frame, one encoding). An encoding kind,
    if drawn, is applied last and decides the file format (so "crop then save as JPEG 30" is
    one JPEG, not PNG); otherwise the file is PNG.
    kind is "chain:" + the step kinds joined by "+", in the order applied; params["steps"]
    lists each step's kind and params.
    """
    _check_level(level)
    if length is None:
        length = _integer(rng, 2, 3)
    if not 2 <= length <= 8:
        raise ValueError(f"chain length must be in [2, 8], not {length}")
    pool = kinds_for_level(level)
    chosen: list[str] = []
    families: set[str] = set()
    while len(chosen) < length:
        kind = _choice(rng, pool)
        family = _CHAIN_FAMILY.get(kind, kind)
        if kind in chosen or family in families:
            continue
        chosen.append(kind)
        families.add(family)
    order = [k for k in chosen if k not in ENCODING_KINDS]
    order += [k for k in chosen if k in ENCODING_KINDS]

    current = _as_rgb(image)
    steps, encoding = [], None
    for kind in order:
        # Pixel edits work on RGB; an encoding saves what it is given (a grayscale copy saved
        # as JPEG stays a one-channel JPEG).
        source = current if kind in ENCODING_KINDS else _as_rgb(current)
        current, params, step_encoding = _EDITS[kind](source, rng, level)
        encoding = step_encoding or encoding
        steps.append({"kind": kind, "params": params})
    data, ext = _encode(current, encoding)
    params = _plain({"level": level, "steps": steps})
    return Variant(data=data, ext=ext, kind="chain:" + "+".join(order), params=params)


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {LEVELS}")


def _plain(value):
    """``value`` with numpy scalars and tuples turned into JSON-native Python types."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
