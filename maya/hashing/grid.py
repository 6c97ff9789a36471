"""Cell agreement: how much of two pictures is pixel for pixel the same, where one covers part of the other.

An overlay (emoji, shapes, a caption, a watermark) changes a part of a picture and leaves the rest as it was.
A global pHash and a global embedding both move a lot under such an edit (in the bench_views collection
the overlaid copies sit 12-28 bits and 0.31-0.59 cosine from their originals, as far as distinct photos), yet
most of the picture still matches cell for cell. This module measures that, occlusion-tolerantly:

* per content, a small grey thumbnail (:func:`thumbnails`): ``THUMB x THUMB`` uint8 (0..255), the decoded
  image (the feature loop's one decode) converted to grey and area-averaged (``BOX``) to the square, so an
  aspect change does not misalign it. Stored by content in ``grid_thumbs`` under :data:`ALGORITHM`.
* per pair, :func:`agreement`: the thumbnails are cut into ``GRID x GRID`` cells of ``CELL x CELL`` pixels.
  From each cell the best quadratic surface (least squares: constant, ramps, curvatures) is taken away: a
  smooth gradient (a sky, a blurred colour field, an upscaled thumbnail) is no structure, so two distinct smooth
  pictures cannot agree by their ramps. A cell is *structured* when what is left has a standard deviation of at
  least :data:`CELL_STD` (grey levels), and two cells *agree* when both are structured and what is left
  correlates at least :data:`CELL_CORRELATION` (so brightness, contrast and gamma-like edits leave agreement).
  The pair's score is the agreeing
  cells over the cells structured in either image (a cell that an overlay flattens or that only one image has
  counts against it; cells flat in both count for nothing), and 0 when fewer than :data:`MIN_AGREE` cells
  agree: near-uniform pictures and pairs that share only a frame's edges (screenshots' chrome, the
  corners of two rotated copies) cannot score.

Measured on the ``benchmarks/bench_views.py --per-kind 1`` collection (264 files, 34,716 pairs): every pair of
files of distinct originals scores 0 (fewer than 16 agreeing cells), while 20 of 24 shape-overlaid and 20 of 24
text-overlaid copies score 0.40-0.91 against their original (the others 0-0.39), and 4 of 24 chains (those
without a crop or turn). 48 distinct smooth pictures (random 6x6 colours, upscaled): every pair 0; with planes
only taken away, up to 0.40; with nothing taken away, 0.44. Distinct halves of one texture (gravel, grass) do
not agree cell for cell either (``tests/test_dedup_grid.py``).
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
#: An image with fewer structured cells than this (of GRID * GRID) is *smooth*: colour fields, gradients, blurred
#: backgrounds. An embedding cannot tell two of them apart (efficientnet-lite0 scores distinct smooth fields
#: 0.90-0.975 against each other), so for a pair of two smooth images (and a smooth file's vote) the model is not consulted
#: (``maya.dedup.candidates.Images.for_rule``). Measured: 48 distinct smooth fields (random 6x6 colours, upscaled)
#: have 0-8 structured cells, 46 of them under 8; the bundled photos 8-64, and 60 photos of the fastdup benchmark
#: folder 8-64.
SMOOTH_CELLS = 8


def thumbnails(images: Sequence) -> np.ndarray:
    """The grey thumbnails of decoded PIL images: uint8 (N, THUMB, THUMB)."""
    from PIL import Image

    if not len(images):
        return np.zeros((0, THUMB, THUMB), np.uint8)
    return np.stack([np.asarray(im.convert("L").resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.uint8)
                     for im in images])


def cells(thumbs: np.ndarray) -> np.ndarray:
    """The thumbnails in cell order: uint8 (N, GRID*GRID, CELL*CELL), each cell's pixels row-major."""
    t = np.asarray(thumbs, dtype=np.uint8).reshape(-1, GRID, CELL, GRID, CELL)
    return np.ascontiguousarray(t.transpose(0, 1, 3, 2, 4).reshape(t.shape[0], GRID * GRID, CELL * CELL))


def _surface_basis() -> np.ndarray:
    """Orthonormal basis (CELL*CELL, 6) of the quadratic surfaces over a cell: 1, x, y, x^2, xy, y^2."""
    yy, xx = np.mgrid[0:CELL, 0:CELL].astype(np.float64) - (CELL - 1) / 2
    x, y = xx.ravel() / CELL, yy.ravel() / CELL
    basis, _ = np.linalg.qr(np.stack([np.ones(CELL * CELL), x, y, x * x, x * y, y * y], axis=1))
    return basis.astype(np.float32)


_BASIS = _surface_basis()


def cell_stats(cell_pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(surface, std)`` of each cell of :func:`cells` output: its pixels' (minus 128) coordinates on the quadratic
    surfaces' orthonormal basis, float32 (N, GRID*GRID, 6), and the standard deviation of what the best surface
    leaves (grey levels), float32 (N, GRID*GRID). Computed once per image, :data:`_STATS_CHUNK` images at a time
    (the float32 pixels of a whole collection would be 37 KB an image, twice over)."""
    n = len(cell_pixels)
    plane = np.empty((n, GRID * GRID, _BASIS.shape[1]), np.float32)
    std = np.empty((n, GRID * GRID), np.float32)
    for s in range(0, n, _STATS_CHUNK):
        x = np.asarray(cell_pixels[s:s + _STATS_CHUNK], dtype=np.float32) - 128
        p = x @ _BASIS
        rest = np.einsum("ncx,ncx->nc", x, x) - np.einsum("ncb,ncb->nc", p, p)
        plane[s:s + _STATS_CHUNK] = p
        std[s:s + _STATS_CHUNK] = np.sqrt(np.maximum(rest, 0.0) / np.float32(CELL * CELL))
    return plane, std


_STATS_CHUNK = 256


def agreement(thumbs_a: np.ndarray, thumbs_b: np.ndarray) -> np.ndarray:
    """The score of each pair of thumbnails ``thumbs_a[k]``, ``thumbs_b[k]`` (uint8 (P, THUMB, THUMB) each):
    float64 (P,), agreeing cells / cells structured in either (0 below :data:`MIN_AGREE` agreeing cells)."""
    both = cells(np.concatenate([thumbs_a, thumbs_b]))
    n = len(thumbs_a)
    return agreement_of(both, *cell_stats(both), np.arange(n), np.arange(n, 2 * n))


def agreement_of(cell_pixels: np.ndarray, plane: np.ndarray, std: np.ndarray, a, b, chunk: int = 64) -> np.ndarray:
    """As :func:`agreement`, for pairs of rows ``a[k]``, ``b[k]`` of :func:`cells` output and its :func:`cell_stats`
    (computed once per image). Chunks of 64 pairs stay in the CPU cache: about 11 us a pair on this machine
    (90 us in chunks of 4096)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    out = np.zeros(a.size, np.float64)
    k = np.float32(CELL * CELL)
    for s in range(0, a.size, chunk):
        x, y = a[s:s + chunk], b[s:s + chunk]
        xy = np.einsum("pcx,pcx->pc", cell_pixels[x].astype(np.float32) - 128, cell_pixels[y].astype(np.float32) - 128)
        cov = (xy - np.einsum("pcx,pcx->pc", plane[x], plane[y])) / k  # of what the surfaces leave
        fa, fb = std[x] >= CELL_STD, std[y] >= CELL_STD
        with np.errstate(invalid="ignore", divide="ignore"):
            r = cov / (std[x] * std[y])
        agree = (fa & fb & (r >= CELL_CORRELATION)).sum(axis=1)
        either = (fa | fb).sum(axis=1)
        out[s:s + chunk] = np.where(agree >= MIN_AGREE, agree / np.maximum(either, 1), 0.0)
    return out


def smooth(std: np.ndarray) -> np.ndarray:
    """Which images are smooth (bool (N,)), from :func:`cell_stats`'s ``std`` (N, GRID*GRID)."""
    return (np.asarray(std) >= CELL_STD).sum(axis=1) < SMOOTH_CELLS
