"""Edit speed: the median CPU milliseconds per kind of :mod:`maya.pairs.transforms` on a 1 MP photo.

    python benchmarks/bench_transforms.py [--repeats R] [--megapixels M]

The photo is scikit-image's ``coffee`` scaled to about ``M`` MP (default 1). Each kind is made
``R`` times (seeds 0..R-1, levels light, medium, strong in turn) and timed in CPU time of this
thread (``time.thread_time``), not wall time, so other processes on a shared machine do not
inflate it; the edits and encoders run in the calling thread. Times include encoding (PNG, JPEG or
WebP). Printed: one line per kind, then a medium chain and the median over all kinds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data as skdata  # noqa: E402

from maya.pairs.transforms import KINDS, LEVELS, make_chain, make_variant  # noqa: E402


def cpu_ms(make) -> float:
    """CPU milliseconds of one call of ``make``."""
    start = time.thread_time()
    make()
    return (time.thread_time() - start) * 1000


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="variants per kind (default 3)")
    parser.add_argument("--megapixels", type=float, default=1.0, help="photo size in MP (default 1)")
    args = parser.parse_args(argv)

    coffee = Image.fromarray(skdata.coffee())  # 600 x 400 RGB
    scale = (args.megapixels * 1_000_000 / (coffee.width * coffee.height)) ** 0.5
    photo = coffee.resize((round(coffee.width * scale), round(coffee.height * scale)))
    make_variant(photo, "noise", np.random.default_rng(0))  # warm caches (font, noise table)

    lines, medians = [], {}
    for kind in KINDS:
        times = [cpu_ms(lambda: make_variant(photo, kind, np.random.default_rng(seed), LEVELS[seed % len(LEVELS)]))
                 for seed in range(args.repeats)]
        medians[kind] = statistics.median(times)
        lines.append(f"{kind:14s} {medians[kind]:6.1f} ms")
    chain_rngs = [np.random.default_rng(seed) for seed in range(args.repeats)]
    chain = [cpu_ms(lambda: make_chain(photo, rng, "medium")) for rng in chain_rngs]
    lines.append(f"{'chain (medium)':14s} {statistics.median(chain):6.1f} ms")
    lines.append(f"{'all kinds':14s} {statistics.median(medians.values()):6.1f} ms (median)")
    print(f"median CPU ms per variant (levels in turn), {photo.size[0]}x{photo.size[1]} photo, incl. encoding:")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
