"""Second views of an image: the picture inside a screenshot, an app window, a meme layout or a border.

A screenshot of a photo, a meme with caption bands or a letter-/pillar-boxed copy is one picture inside a
frame of near-constant colour (bars, bands, margins, borders; captions and title text cover only a small
part of a frame's rows). Compared whole, such a copy is far from its original in pHash and in the
embedding; its inner region is close. :func:`inner_box` finds that region on a small copy of the image:

1. rows, then columns, are **frame lines** when at least ``FLAT_FRACTION`` of their pixels lie within
   ``TOLERANCE`` (8-bit levels, every channel) of the line's median colour;
2. frame lines are peeled from both ends of the rows, then of the columns inside, then of the rows again
   (an app window: bar and margin rows, then margin columns); a short run of non-frame lines with frame
   lines behind it (a caption, a title) is peeled with them; the later passes peel only the colours the
   first found (a picture's own flat edge is not a frame);
3. a box is kept only when it leaves out at least ``MIN_CUT`` of the width or the height and keeps at
   least ``MIN_AREA`` of the area (and ``MIN_SIDE`` pixels of the small copy): otherwise the image has no
   frame worth a second view and gets none
   (3 is checked after 4);
4. every cut side of the box must be an **edge**: of the ``EDGE_LINES`` lines just inside it, at most
   ``EDGE_SHARE`` of the pixels may have the colour of the frame line just outside it. A picture pasted
   into a frame starts abruptly (measured: at most 0.53 of its edge pixels have the frame's colour, mostly
   near 0); a photo's own flat sky or dark background, the black corners of a small rotation, or the empty
   canvas around a sparse drawing fade into the content, so the peeling stopped only where the flat share
   fell just below ``FLAT_FRACTION`` (measured 0.68-0.95). A side that fades is moved back out to the
   next abrupt edge (a border, then the picture's own flat background); when it reaches the image's
   border instead, the image gets no view. Without this a "view" was the same picture
   less its background: it cost an embedding (117 of 264 files of ``benchmarks/bench_views.py`` had views,
   where only the 48 screenshots and bordered copies need them) and, for sparse drawings (white strokes on
   black, whose "views" were their strokes' bounding boxes), joined distinct pictures.

A view is identified by the content's sha256 and :data:`ALGORITHM` (the version of this detector); its box
is stored in the ``views`` table as fractions of the oriented image's width and height (0..1), so it does
not depend on the decode scale. Its pHash and embedding are cached by content under derived ids
(:func:`view_feature_id`) in the ``hashes`` and ``embeddings`` tables, like every feature. A view never
becomes a file: pairs of views are folded into one pair of contents (the best pair of views).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ALGORITHM = "inner-v2"
"""Version of the detector (the ``views.view`` value and part of the view's feature ids): bump on change."""

ANALYSIS_SIDE = 256  # the image is analysed at this longer side (pixels)
TOLERANCE = 8  # levels (0..255) a frame pixel may differ from its line's median colour, per channel
FLAT_FRACTION = 0.8  # a line is frame when this share of its pixels has the line's colour
TEXT_RUN = 0.12  # content runs up to this share of the side between frame lines are captions, not content
BAR_RUN = 0.1  # the frame may change colour once, within this share of the side (a title bar, then a margin)
MIN_CUT = 0.06  # the box must leave out at least this share of the width or of the height
MIN_AREA = 0.15  # ...and keep at least this share of the area
MIN_SIDE = 24  # ...and be at least this many analysis pixels on each side
EDGE_LINES = 3  # lines just inside each cut side of the box that must not continue the frame...
EDGE_SHARE = 0.6  # ...i.e. at most this share of their pixels within TOLERANCE of the frame line's colour
RETREAT_SHARE = 0.2  # a side that fades moves out to the first line where the share is at most this


#: Fixed extra views (``maya dedup --extra-views NAME``, default off): name -> (version, box as fractions).
#: They help where a copy is a fixed part of its original (a centre crop to about half the area) and cost
#: one more decode and one embedding of every image. Quarter turns and mirrors need none: the dihedral pHash
#: and the model already match them (``benchmarks/bench_views.py``: rotate_90 and hflip recall 1.00 without
#: views).
EXTRA_VIEWS = {"centre": ("centre50-v1", (0.1464, 0.1464, 0.8536, 0.8536))}  # the middle 50 % of the area


def view_feature_id(base: str, view: str = ALGORITHM) -> str:
    """The id under which a view's feature is cached: ``"<hash algorithm or model id>@<view>"``."""
    return f"{base}@{view}"


def _frame_lines(rgb: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row (axis=1) or column (axis=0) of ``rgb`` (h, w, 3) int16: is it a frame line (bool (n,)), and its
    median colour (int16 (n, 3))."""
    n = rgb.shape[axis]
    part = np.partition(rgb, [(n - 1) // 2, n // 2], axis=axis)  # np.median's value, at a third of its cost
    lo, hi = np.take(part, [(n - 1) // 2], axis=axis), np.take(part, [n // 2], axis=axis)
    twice = lo + hi  # twice the median, in int16: |rgb - median| <= TOLERANCE exactly when |2 rgb - twice| <= 2
    close = _all_channels_within(2 * rgb, twice, 2 * TOLERANCE)  # TOLERANCE (no float64 copy of the image)
    return close.mean(axis=axis) >= FLAT_FRACTION, np.squeeze(twice // 2, axis=axis).astype(np.int16)


def _all_channels_within(values: np.ndarray, centre: np.ndarray, tolerance: int) -> np.ndarray:
    """Bool (..., ): ``|values - centre| <= tolerance`` in every channel (the last axis, 3) of int16 ``values``
    (overwritten), ``centre`` broadcast to it. The three channels are combined one by one: numpy's reduction
    over a last axis of 3 cost more than the arithmetic (a third of :func:`inner_box`'s time)."""
    values -= centre
    np.abs(values, out=values)
    ok = values <= tolerance
    return ok[..., 0] & ok[..., 1] & ok[..., 2]


class _Lines:
    """The rows (``axis=1``) or columns (``axis=0``) of ``rgb`` (h, w, 3) int16 as :func:`_peel` reads them: is
    each a frame line, its median colour, and (with ``known`` colours) is that colour one of them. Computed
    :data:`_CHUNK` lines at a time, when the peel first reads one: peeling reads the lines near both ends, and
    a photo's, only a few."""

    def __init__(self, rgb: np.ndarray, axis: int, known: list | None = None):
        self.rgb, self.axis = rgb, axis
        self.n = rgb.shape[0] if axis == 1 else rgb.shape[1]
        self.known = np.unique(np.asarray(known, dtype=np.int16), axis=0) if known else None
        self.frame = np.zeros(self.n, dtype=bool)
        self.allowed = np.ones(self.n, dtype=bool)
        self.colour: list = [None] * self.n
        self.filled = np.zeros(-(-self.n // _CHUNK), dtype=bool)

    def at(self, i: int) -> tuple[bool, tuple, bool]:
        """(frame line, median colour, allowed) of line ``i``."""
        c = i // _CHUNK
        if not self.filled[c]:
            a, b = c * _CHUNK, min(self.n, (c + 1) * _CHUNK)
            frame, colour = _frame_lines(self.rgb[a:b] if self.axis == 1 else self.rgb[:, a:b], self.axis)
            self.frame[a:b] = frame
            self.colour[a:b] = [tuple(v) for v in colour.tolist()]
            if self.known is not None:  # is the line's colour one of the known frame colours
                near = np.abs(colour[:, None, :] - self.known[None, :, :]) <= TOLERANCE
                self.allowed[a:b] = np.all(near, axis=2).any(axis=1)
            self.filled[c] = True
        return bool(self.frame[i]), self.colour[i], bool(self.allowed[i])


_CHUNK = 16  # lines computed at a time by _Lines


def _peel(lines: _Lines) -> tuple[int, int, list]:
    """(start, stop, frame colours) of the content between the frame lines at both ends.

    From each end, frame lines are skipped, and so is a short run of content lines (at most ``TEXT_RUN`` of
    the side: a caption or a title) that has frame lines again behind it. The frame may change colour once,
    within its first ``BAR_RUN`` of the side (an app window's title bar, then its margin); a second change,
    or a later one, is the picture's own flat edge (a white sky behind a black band): the peeling stops.
    With ``known`` colours (:class:`_Lines`, found by an earlier pass), only frame lines of these colours are
    peeled."""
    n = lines.n
    seen: list = []

    def inward(at) -> int:
        i, steps, last = 0, 0, None
        while i < n:
            while i < n:
                frame, colour, allowed = at(i)
                if not (frame and allowed):
                    break
                if last is not None and any(abs(x - y) > TOLERANCE for x, y in zip(colour, last)):
                    if steps >= 1 or i > BAR_RUN * n:
                        return i
                    steps += 1
                last = colour
                seen.append(colour)
                i += 1
            if i == 0:
                return 0
            j = i  # a run of content lines: a caption when short and with frame lines behind it
            while j < n and j - i <= TEXT_RUN * n and not at(j)[0]:
                j += 1
            if j < n and j - i <= TEXT_RUN * n and at(j)[0] and at(j)[2]:
                i = j
                continue
            return i
        return n

    start = inward(lines.at)
    stop = n - inward(lambda i: lines.at(n - 1 - i))
    return start, max(start, stop), seen


def inner_box(image: Image.Image) -> tuple[float, float, float, float] | None:
    """The inner content region of ``image`` as fractions ``(left, top, right, bottom)`` of its size, or None
    when it has no frame (see the module docstring)."""
    small = image if image.mode == "RGB" else image.convert("RGB")
    scale = ANALYSIS_SIDE / max(small.size)
    if scale < 1:
        small = small.resize((max(1, round(small.width * scale)), max(1, round(small.height * scale))),
                             Image.Resampling.BOX)
    rgb = np.asarray(small, dtype=np.int16)
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        return None
    # Peeling starts only at a frame line on the image's border: most photos have none on any of the four,
    # and then the box is the whole image (no view) without a pass over every line.
    if not (_frame_lines(rgb[[0, h - 1]], axis=1)[0].any() or _frame_lines(rgb[:, [0, w - 1]], axis=0)[0].any()):
        return None
    top, bottom, colours = _peel(_Lines(rgb, axis=1))
    if bottom - top < MIN_SIDE:
        return None
    left, right, more = _peel(_Lines(rgb[top:bottom], axis=0, known=colours))
    if right - left < MIN_SIDE:
        return None
    t2, b2, _ = _peel(_Lines(rgb[top:bottom, left:right], axis=1, known=colours + more))
    top, bottom = top + t2, top + b2
    if bottom - top < MIN_SIDE:
        return None
    moved = _at_edges(rgb, [left, top, right, bottom])
    if moved is None:
        return None
    left, top, right, bottom = moved
    cut = max(1 - (right - left) / w, 1 - (bottom - top) / h)
    area = (right - left) * (bottom - top) / (w * h)
    if cut < MIN_CUT or area < MIN_AREA:
        return None
    return left / w, top / h, right / w, bottom / h


def _side_shares(lines: np.ndarray, lo: int, hi: int, end: bool) -> np.ndarray:
    """For every position ``p`` a side of a box may take along axis 0 of ``lines`` ((n, m, 3) int16, already cut
    to the box's span on the other axis), the share of pixels of the ``EDGE_LINES`` lines just inside it that lie
    within ``TOLERANCE`` of the median colour of the line just outside it.

    The start side (``end`` False; the box's lines begin at ``lo``) takes positions ``1..lo``: outside line
    ``p - 1``, inside lines ``p .. p + EDGE_LINES`` (cut at ``n``). The end side (the box's lines stop before
    ``hi``) takes positions ``hi..n-1``: outside line ``p``, inside lines ``max(lo, p - EDGE_LINES) .. p``.
    Returns an array of ``n + 1`` shares indexed by position; positions not computed (the image's edges among
    them) hold 0: the content starts abruptly there."""
    n, m = lines.shape[:2]
    counts = np.zeros(n + 1)
    rows = np.zeros(n + 1)
    if end:  # outside line p, inside lines p-1 .. p-EDGE_LINES that lie in the box (>= lo)
        pos, outside, offsets = np.arange(hi, n), np.arange(hi, n), range(-1, -EDGE_LINES - 1, -1)
    else:  # outside line p-1, inside lines p .. p+EDGE_LINES-1 that lie in the image (< n)
        pos, outside, offsets = np.arange(1, lo + 1), np.arange(0, lo), range(EDGE_LINES)
    if pos.size:
        # twice the median colour of the line just outside each position ((len(pos), 3), a whole number: the
        # median of whole numbers is one or a half), so that the test is in int16 as in _frame_lines
        twice = (2 * np.median(lines[outside], axis=1)).astype(np.int16)
        for d in offsets:
            take = (pos + d >= lo) if end else (pos + d < n)
            inside = 2 * lines[pos[take] + d]
            counts[pos[take]] += _all_channels_within(inside, twice[take][:, None, :], 2 * TOLERANCE).sum(axis=1)
            rows[pos[take]] += 1
    shares = np.zeros(n + 1)
    np.divide(counts, rows * m, out=shares, where=rows > 0)
    return shares


def _at_edges(rgb: np.ndarray, box: list[int]) -> list[int] | None:
    """``box`` with each side that fades out of the frame (share of frame colour just inside it above
    ``EDGE_SHARE``, :func:`_side_shares`) moved out, line by line, to where the content starts abruptly (share
    at most ``RETREAT_SHARE``): a frame followed by the picture's own flat background (a coloured border, then a
    photo's dark sky) keeps that background in the view. None when such a side reaches the image's edge first: a
    flat sky, a dark background or an empty canvas that fades into the content is the picture's own, not a
    frame. Each side is judged over the span of the box as found (measured: judging over the span widened by
    another side's move finds spurious edges inside photos)."""
    left, top, right, bottom = box
    out = list(box)
    for side in range(4):
        across = side % 2 == 0  # left and right sides: positions are columns, the span is the box's rows
        lines = rgb[top:bottom].transpose(1, 0, 2) if across else rgb[:, left:right]
        lo, hi = (left, right) if across else (top, bottom)
        end = side >= 2
        shares = _side_shares(lines, lo, hi, end)
        p = hi if end else lo
        if shares[p] <= EDGE_SHARE:
            continue
        step = 1 if end else -1
        while shares[p] > RETREAT_SHARE:
            p += step
        if p == (lines.shape[0] if end else 0):
            return None
        out[side] = p
    return out


def crop(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """The view of ``image`` inside ``box`` (fractions, as :func:`inner_box` returns)."""
    w, h = image.size
    left, top, right, bottom = box
    px = (round(left * w), round(top * h), max(round(left * w) + 1, round(right * w)),
          max(round(top * h) + 1, round(bottom * h)))
    return image.crop(px)
