"""Cell agreement: how much of two pictures is pixel for pixel the same, where one covers part of the other.

An overlay (emoji, shapes, a caption, a watermark) changes a part of a picture and leaves the rest as it was.
A global pHash and a global embedding both move a lot under such an edit (in the bench_views collection
the overlaid copies sit 12-28 bits and 0.31-0.59 cosine from their originals, as far as distinct photos), yet
most of the picture still matches cell for cell. This module measures that, occlusion-tolerantly:

* per content, a small grey thumbnail (:func:`thumbnails`): ``THUMB x THUMB`` uint8 (0..255), the decoded
  image (the feature loop's one decode) converted to grey and area-averaged (``BOX``) to the square, so an
  aspect change does not misalign it. Stored by content in ``grid_thumbs`` under :data:`ALGORITHM`.
* per pair, :func:`agreement`: the thumbnails are cut into ``GRID x GRID`` cells of ``CELL x CELL`` pixels;
  a cell is *structured* when its grey standard deviation is at least :data:`CELL_STD` (grey levels), and
  two cells *agree* when both are structured and their pixels correlate at least :data:`CELL_CORRELATION`
  (Pearson, so brightness, contrast and gamma-like edits leave agreement). The pair's score is the agreeing
  cells over the cells structured in either image (a cell that an overlay flattens or that only one image has
  counts against it; cells flat in both count for nothing), and 0 when fewer than :data:`MIN_AGREE` cells
  agree: near-uniform pictures and pairs that share only a frame's edges (screenshots' chrome, the
  corners of two rotated copies) cannot score.

Measured on ``benchmarks/bench_views.py --per-kind 1`` (264 files, 34,716 pairs): no pair of distinct
originals scores above 0.33 with at least 16 agreeing cells, while 55 of the 72 overlay and chain copies score
above it against their original (the chains that include a crop or a turn do not align and score low).
Distinct halves of one texture (gravel, grass) do not correlate cell for cell either.
Shapes: thumbnails (N, THUMB, THUMB) uint8; scores float64 (P,) in 0..1.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

ALGORITHM = "gray96-grid-v1"
"""Cache key of the thumbnails (table ``grid_thumbs``): bump it if the pixels a given image gets change."""

THUMB = 96  # pixels per side of the stored grey thumbnail
GRID = 8  # cells per side
CELL = THUMB // GRID  # pixels per side of a cell (12)
CELL_STD = 3.0  # grey levels (0..255): a cell below this in an image is flat there
CELL_CORRELATION = 0.85  # Pearson correlation of two cells' pixels for them to agree
MIN_AGREE = 16  # agreeing cells (of GRID * GRID) below which a pair scores 0


def thumbnails(images: Sequence) -> np.ndarray:
    """The grey thumbnails of decoded PIL images: uint8 (N, THUMB, THUMB)."""
    from PIL import Image

    if not len(images):
        return np.zeros((0, THUMB, THUMB), np.uint8)
    return np.stack([np.asarray(im.convert("L").resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.uint8)
                     for im in images])


def _cells(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(unit, std)``: each cell's pixels with zero mean and unit norm, float32 (N, GRID*GRID, CELL*CELL), and
    its standard deviation, float32 (N, GRID*GRID)."""
    t = np.asarray(thumbs, dtype=np.float32).reshape(-1, GRID, CELL, GRID, CELL)
    cells = t.transpose(0, 1, 3, 2, 4).reshape(t.shape[0], GRID * GRID, CELL * CELL)
    cells = cells - cells.mean(axis=-1, keepdims=True)
    std = np.sqrt((cells ** 2).mean(axis=-1))
    unit = cells / (np.maximum(std, 1e-6)[..., None] * np.float32(np.sqrt(CELL * CELL)))
    return unit, std


def agreement(thumbs_a: np.ndarray, thumbs_b: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """The score of each pair of thumbnails ``thumbs_a[k]``, ``thumbs_b[k]`` (uint8 (P, THUMB, THUMB) each):
    float64 (P,), agreeing cells / cells structured in either (0 below :data:`MIN_AGREE` agreeing cells)."""
    n = len(thumbs_a)
    out = np.zeros(n, np.float64)
    for s in range(0, n, chunk):
        ua, sa = _cells(thumbs_a[s:s + chunk])
        ub, sb = _cells(thumbs_b[s:s + chunk])
        r = np.einsum("pcx,pcx->pc", ua, ub)
        fa, fb = sa >= CELL_STD, sb >= CELL_STD
        agree = (fa & fb & (r >= CELL_CORRELATION)).sum(axis=1)
        either = (fa | fb).sum(axis=1)
        out[s:s + chunk] = np.where(agree >= MIN_AGREE, agree / np.maximum(either, 1), 0.0)
    return out
