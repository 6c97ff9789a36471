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

Only Pillow and numpy are used. This module is the public face (``KINDS``, :func:`make_variant`,
:func:`make_chain`); the levels and draws are :mod:`maya.pairs.edit_levels`, the encoders
:mod:`maya.pairs.encoding`, the edits :mod:`maya.pairs.edits_basic` and :mod:`maya.pairs.edits_overlay`.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from maya.pairs.edit_levels import (  # noqa: F401  (LEVEL_FREE_KINDS: re-exported)
    LEVEL_FREE_KINDS,
    ENCODING_KINDS,
    LEVELS,
    _CHAIN_FAMILY,
    _NOT_LIGHT,
    _as_rgb,
    _choice,
    _integer,
)
from maya.pairs.encoding import (  # noqa: F401  (encode_png: re-exported)
    encode_png,
    _encode,
)
from maya.pairs.edits_basic import (
    _EditResult,
    _aspect_ratio,
    _blur,
    _brightness,
    _contrast,
    _crop_center,
    _crop_random,
    _gamma,
    _grayscale,
    _hflip,
    _hue,
    _jpeg_quality,
    _png_reencode,
    _resize_down,
    _resize_up,
    _rotate_90,
    _rotate_small,
    _saturation,
    _sharpen,
    _webp,
)
from maya.pairs.edits_overlay import (  # noqa: F401  (perspective_coefficients: re-exported)
    perspective_coefficients,
    _noise,
    _pad_border,
    _perspective,
    _pixelate,
    _screenshot,
    _shape_overlay,
    _text_overlay,
    _watermark,
)

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
