"""Edits that change size, framing by crop, orientation, encoding, colour and tone, and sharpness.

Every edit has the signature ``(image, rng, level) -> (edited image, params, encoding)``;
encoding is None for pixel edits and a dict for the encoding kinds.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from maya.pairs.edit_levels import (
    _JPEG_SUBSAMPLING,
    _RESAMPLE,
    _WEBP_METHOD,
    _as_rgb,
    _choice,
    _integer,
    _range,
    _symmetric_factor,
    _uniform,
)

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


