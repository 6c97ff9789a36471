"""Edits that add to the picture or re-frame it: noise, pixelation, text, shapes, watermarks,
borders, screenshots and perspective.

Same signature as :mod:`maya.pairs.edits_basic`: ``(image, rng, level) -> (image, params, None)``.
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist

import numpy as np
from PIL import Image, ImageDraw

from maya.pairs.edit_levels import (
    LEVELS,
    _SHAPE_COUNT,
    _TEXT_LINES,
    _as_rgb,
    _choice,
    _font,
    _integer,
    _random_colour,
    _random_words,
    _range,
    _uniform,
)

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


