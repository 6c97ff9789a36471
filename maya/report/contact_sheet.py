"""A PNG contact sheet: one row per pair (label | original | edited | caption), to eyeball
what a benchmark's edits look like and how far apart the scores put them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

_BACKGROUND = (250, 250, 250)
_CELL = (228, 228, 228)
_INK = (20, 20, 20)
_FAINT = (110, 110, 110)
_PAD = 8
_FONT_PX = 13
_LABEL_WIDTH = 200
_CAPTION_WIDTH = 220


def contact_sheet(
    rows: Sequence[tuple[str, Image.Image, Image.Image, str]],
    path: str | Path,
    thumb: int = 160,
) -> Path:
    """Write a contact sheet PNG and return its path.

    rows: (label, original, edited, caption) per row, e.g.
        ("chain:crop_center+jpeg_quality", original, edited, "pHash d=7  CLIP 0.93").
        Images may be any PIL mode and size; each is shrunk (never enlarged) to fit a
        ``thumb`` x ``thumb`` px cell, and its real size in pixels is printed under it.
    path: the PNG to write; parent folders are created.
    thumb: the side of a thumbnail cell, in pixels.
    A header row names the columns; an empty ``rows`` gives a sheet with the header only.
    """
    if thumb < 16:
        raise ValueError(f"thumb must be at least 16 px, not {thumb}")
    font = ImageFont.load_default(size=_FONT_PX)
    line_height = _FONT_PX + 4
    header_height = line_height + 2 * _PAD
    row_height = thumb + line_height + 3 * _PAD
    columns = [_LABEL_WIDTH, thumb, thumb, _CAPTION_WIDTH]
    lefts = [_PAD + sum(columns[:i]) + _PAD * i for i in range(len(columns))]
    width = lefts[-1] + columns[-1] + _PAD
    height = header_height + row_height * len(rows) + _PAD

    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for left, title in zip(lefts, ("kind", "original", "edited", "score")):
        draw.text((left, _PAD), title, font=font, fill=_FAINT)

    for index, (label, original, edited, caption) in enumerate(rows):
        top = header_height + index * row_height
        draw.line((0, top, width, top), fill=_CELL)
        _draw_wrapped(draw, str(label), (lefts[0], top + _PAD), columns[0], font, line_height)
        for left, image in zip(lefts[1:3], (original, edited)):
            draw.rectangle((left, top + _PAD, left + thumb - 1, top + _PAD + thumb - 1), fill=_CELL)
            small = ImageOps.contain(_as_rgb(image), (thumb, thumb), Image.Resampling.BILINEAR)
            offset = (left + (thumb - small.width) // 2, top + _PAD + (thumb - small.height) // 2)
            sheet.paste(small, offset)
            size_text = f"{image.width}x{image.height} {image.mode}"
            draw.text((left, top + 2 * _PAD + thumb), size_text, font=font, fill=_FAINT)
        _draw_wrapped(draw, str(caption), (lefts[3], top + _PAD), columns[3], font, line_height)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, "PNG")
    return path


def _as_rgb(image: Image.Image) -> Image.Image:
    image.load()
    return image if image.mode == "RGB" else image.convert("RGB")


def _draw_wrapped(
    draw: ImageDraw.ImageDraw,
    text: str,
    origin: tuple[int, int],
    max_width: int,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    line_height: int,
) -> None:
    """Draw ``text`` in lines no wider than ``max_width`` px, breaking after spaces, "+" and
    ":" where possible (chain names), else mid-word."""
    x, y = origin
    for line in _wrap(text, max_width, lambda s: draw.textlength(s, font=font)):
        draw.text((x, y), line, font=font, fill=_INK)
        y += line_height


def _wrap(text: str, max_width: int, measure) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for char in paragraph:
            if measure(current + char) <= max_width or not current:
                current += char
                continue
            cut = max(current.rfind(" "), current.rfind("+"), current.rfind(":"))
            if cut > 0:
                lines.append(current[: cut + 1].rstrip())
                current = current[cut + 1 :].lstrip() + char
            else:
                lines.append(current)
                current = char
        lines.append(current)
    return lines
