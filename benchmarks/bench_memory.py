"""Peak memory of a phash dedup of a folder that holds one huge PNG: what one large image costs.

    python benchmarks/bench_memory.py [--megapixels 153] [--small 20] [--keep DIR]

Makes (in a child process, so its own memory does not count) a folder with one PNG of ``--megapixels``
million pixels (RGB gradients, 3:2) and ``--small`` small PNGs, then runs ``maya dedup --mode phash`` on it
in a fresh child (``run_dedup`` with a DuckDB file) and reports that child's peak resident memory
(``ru_maxrss``), next to a child that only imported the same modules. The large image is below Maya's
decompression-bomb limit (``maya.io.images.DEFAULT_MAX_PIXELS``, 179 MP) unless asked otherwise. Last
line: ``peak_rss_mb_huge_png: X`` (MB = 10^6 bytes).

Known floor (Pillow 13): an RGB image is held at 4 bytes per pixel, so one full decode of 153 MP is
612 MB by itself; PNG has no reduced-size decode (unlike JPEG's DCT scaling), so only decoding in strips
would go below it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_MAKE = r"""
import math, numpy as np
from PIL import Image
Image.MAX_IMAGE_PIXELS = None
mp, small, folder = {mp!r}, {small!r}, {folder!r}
w = int(math.sqrt(mp * 1e6 * 1.5)); h = int(mp * 1e6 / w) + 1
rgb = np.empty((h, w, 3), np.uint8)
for c, (a, b) in enumerate(((0.5, 0.5), (0.3, 0.7), (1.0, 1.0))):
    for y0 in range(0, h, 1024):
        y = np.arange(y0, min(h, y0 + 1024), dtype=np.float32)[:, None] * (255.0 / h)
        x = np.arange(w, dtype=np.float32)[None, :] * (255.0 / w)
        rgb[y0:y0 + 1024, :, c] = ((y * a + x * b) % 256).astype(np.uint8)
Image.fromarray(rgb).save(folder + "/huge.png", compress_level=1)
for i in range(small):
    Image.fromarray(np.ascontiguousarray(np.roll(rgb[::50, ::50], 7 * i, axis=1))).save(folder + f"/small{{i:03d}}.png")
print(w * h)
"""

_RUN = r"""
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
from maya.dedup.options import DedupOptions
from maya.dedup.pipeline import run_dedup
import numpy, duckdb, PIL.Image, scipy.sparse.csgraph  # the same imports as a run, for the baseline
if {baseline!r}:
    print(json.dumps({{"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}})); sys.exit(0)
t0 = time.perf_counter()
run = run_dedup({folder!r}, DedupOptions(mode="phash"), db_path={db!r})
print(json.dumps({{"seconds": time.perf_counter() - t0, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "files": run.counts["files_found"], "errors": [e.error for e in run.errors]}}))
"""


def _child(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--megapixels", type=float, default=153.0)
    ap.add_argument("--small", type=int, default=20)
    ap.add_argument("--keep", help="folder for the images (made once, reused)")
    args = ap.parse_args(argv)
    folder = Path(args.keep or tempfile.mkdtemp(prefix="maya-bench-huge-"))
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "huge.png").exists():
        pixels = int(_child(_MAKE.format(mp=args.megapixels, small=args.small, folder=str(folder))))
    else:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None
        with Image.open(folder / "huge.png") as im:
            pixels = im.width * im.height
    base = json.loads(_child(_RUN.format(root=str(ROOT), folder="", db="", baseline=True)))
    with tempfile.TemporaryDirectory(prefix="maya-bench-db-") as d:
        r = json.loads(_child(_RUN.format(root=str(ROOT), folder=str(folder), db=os.path.join(d, "m.duckdb"),
                                          baseline=False)))
    mb = r["peak_mib"] * 2**20 / 1e6
    print(f"{r['files']} files, one PNG of {pixels / 1e6:.1f} MP ({(folder / 'huge.png').stat().st_size / 1e6:.0f} MB "
          f"on disk): phash dedup {r['seconds']:.1f} s, peak {r['peak_mib']:.0f} MiB ({mb:.0f} MB); "
          f"imports alone {base['peak_mib']:.0f} MiB; errors {r['errors']}")
    print(f"peak_rss_mb_huge_png: {mb:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
