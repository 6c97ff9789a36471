"""The catalogue of edit levels and parameter ranges, and the seeded draws the edits make.

A strong edit is always stronger than a light one of the same kind: the three levels' ranges do
not overlap. Every draw takes a ``numpy.random.Generator``; the order of draws is part of the
output (see :mod:`maya.pairs.transforms`).
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image, ImageFont

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


