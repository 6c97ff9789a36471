"""Pair building speed: 100 originals of about 1 MP -> 2,000 labelled pairs, timed.

    python benchmarks/bench_pairs.py [--originals N] [--pairs P] [--workers W] [--seed S] [--keep DIR]

The originals are made by code from scikit-image's sample photos: each photo is cut into
non-overlapping tiles (2x2, 3x2 or 3x3 by its size, so no two originals share pixels), each tile
is scaled to about 1 MP (aspect kept) and tinted with its own seeded per-channel gains, and saved
as JPEG (quality 90; every fifth one as PNG). Then :func:`maya.pairs.build.build_pairs` makes
``P / 2`` positives (``positives_per_original`` single edits + 2 chains per original) and as many
negatives (half hard by pHash, half random), writing the derived images to a temporary folder.

Printed: the machine's load, the time to make the originals (not counted), the build time split
into its phases as build_pairs reports them, and pairs/s. The last line is
``seconds_for_2000_pairs: X`` (scaled linearly when ``--pairs`` is not 2000).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402

# Left out: microaneurysms (102 px) and chessboard (200 px) are too small to tile.
TILED_PHOTOS = (
    "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "camera.png",
    "coins.png", "moon.png", "page.png", "brick.png", "grass.png", "gravel.png", "hubble_deep_field.jpg",
    "ihc.png", "retina.jpg", "cell.png", "clock_motion.png", "color.png", "logo.png", "text.png",
    "horse.png", "phantom.png",
)


def _grid(width: int, height: int) -> tuple[int, int]:
    """Tiles across and down: more tiles from bigger photos."""
    if max(width, height) >= 1000:
        return 3, 3
    if max(width, height) >= 600:
        return (3, 2) if width >= height else (2, 3)
    return 2, 2


def make_originals(dest: Path, count: int = 100, megapixels: float = 1.0, seed: int = 0) -> list[Path]:
    """Write ``count`` distinct ~``megapixels`` MP originals into ``dest``; return their paths."""
    import skimage.data
    from PIL import Image

    root = Path(skimage.data.__file__).resolve().parent
    rng = np.random.default_rng(seed)
    tiles = []
    for name in TILED_PHOTOS:
        path = root / name
        if not path.exists():
            continue
        with Image.open(path) as im:
            photo = im.convert("RGB")
        cols, rows = _grid(*photo.size)
        tw, th = photo.width // cols, photo.height // rows
        for r in range(rows):
            for c in range(cols):
                tiles.append((Path(name).stem, r, c, photo.crop((c * tw, r * th, (c + 1) * tw, (r + 1) * th))))
    if len(tiles) < count:
        raise SystemExit(f"only {len(tiles)} distinct tiles available; ask for fewer originals")
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, (stem, r, c, tile) in enumerate(tiles[:count]):
        scale = (megapixels * 1e6 / (tile.width * tile.height)) ** 0.5
        size = (round(tile.width * scale), round(tile.height * scale))
        big = np.asarray(tile.resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
        gains = rng.uniform(0.75, 1.25, size=3).astype(np.float32)
        tinted = Image.fromarray(np.clip(big * gains, 0, 255).astype(np.uint8))
        if k % 5 == 4:
            p = dest / f"{k:03d}-{stem}-{r}{c}.png"
            tinted.save(p, compress_level=1)
        else:
            p = dest / f"{k:03d}-{stem}-{r}{c}.jpg"
            tinted.save(p, quality=90)
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--originals", type=int, default=100)
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--chains", type=int, default=2, help="chains per original")
    ap.add_argument("--workers", type=int, default=None, help="edit threads (default: one per core)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="make the originals and derived images here and keep them")
    args = ap.parse_args(argv)

    from maya.pairs.build import build_pairs

    positives_per_original = max(1, round(args.pairs / 2 / args.originals) - args.chains)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="maya-bench-pairs-"))
    try:
        t0 = time.perf_counter()
        paths = make_originals(work / "originals", args.originals, seed=args.seed)
        made_s = time.perf_counter() - t0
        mp = np.mean([_pixels(p) for p in paths]) / 1e6
        print(f"cpus: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.2f}")
        print(f"originals: {len(paths)} files, {mp:.2f} MP on average, made in {made_s:.1f} s (not timed)")

        cpu0 = time.process_time()
        t0 = time.perf_counter()
        ps = build_pairs(work / "originals", work / "images", seed=args.seed,
                         positives_per_original=positives_per_original, chains_per_original=args.chains,
                         negatives_per_positive=1.0, workers=args.workers)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        n = len(ps.pairs)
        n_pos = sum(p.label for p in ps.pairs)
        derived = {p.b for p in ps.pairs if p.label and p.kind != "semantic"}
        print(f"pairs: {n} ({n_pos} positive, {n - n_pos} negative), {len(ps.kinds())} kinds, "
              f"{len(derived)} derived images, {len(ps.errors)} problems")
        for phase, s in ps.timings.items():
            print(f"  {phase}: {s:.2f} s")
        print(f"build: {seconds:.2f} s wall, {cpu:.2f} s CPU in this process ({cpu / seconds:.2f} cores busy), "
              f"{n / seconds:.1f} pairs/s; load average after: {os.getloadavg()[0]:.2f}")
        print(f"seconds_for_2000_pairs: {seconds * 2000 / max(n, 1):.2f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _pixels(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return im.width * im.height


if __name__ == "__main__":
    sys.exit(main())
