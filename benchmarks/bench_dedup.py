"""Peak memory and time of a dedup over N images: bounded by the batch size, not by the collection.

    python benchmarks/bench_dedup.py [--images 2500 10000] [--mode phash] [--model NAME] [--batch-size B]
                                     [--side 128] [--keep DIR]

For each N, N synthetic images are made by code (smooth random colour fields, ``--side`` pixels square,
PNG; one in ten also saved as a JPEG copy, so there are duplicates to find) and one dedup runs in a
fresh child process (``maya.dedup.pipeline.run_dedup`` with a DuckDB file: walk, sha256, decode, pHash [+ embed],
candidates, groups, all tables written). The child reports its own peak resident memory
(``ru_maxrss``) and the time of each phase; a second run over the same folder (everything reused)
is timed too, then (``--grow``, default 100) new images are moved into the folder and a third run is
timed: it must read and compute only those (``grown_run_N: seconds=S first_seconds=F ratio=S/F``). With ``--mode hybrid`` or ``clip`` give ``--model`` (e.g. ``efficientnet-lite0``, or a
local CLIP folder); ``tiny-clip`` builds the test suite's tiny random CLIP (fast, for memory only).

Prints one row per N: files, seconds (first run, second run), files/s, peak RSS (MiB) and the peak
minus the baseline of a child that only imported the same modules, i.e. what the data cost.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def make_images(folder: Path, count: int, side: int, seed: int = 0) -> int:
    """``count`` distinct images plus a JPEG copy of every tenth; returns the number of files."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f".complete-{count}-{side}-{seed}"
    if marker.exists():
        return int(marker.read_text())

    def one(k: int) -> int:
        rng = np.random.default_rng([seed, k])
        small = (rng.random((5, 5, 3)) * 255).astype(np.uint8)
        img = Image.fromarray(small).resize((side, side), Image.Resampling.BICUBIC)
        sub = folder / f"{k // 1000:03d}"
        sub.mkdir(exist_ok=True)
        img.save(sub / f"img{k:06d}.png", compress_level=1)
        if k % 10 == 0:
            img.save(sub / f"img{k:06d}_copy.jpg", quality=85)
            return 2
        return 1

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        n = sum(pool.map(one, range(count)))
    marker.write_text(str(n))
    return n


_CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
from maya.dedup.options import DedupOptions
from maya.dedup.pipeline import run_dedup
import numpy, duckdb, PIL.Image, scipy.sparse.csgraph  # the same imports as a run, for the baseline
if {mode!r} != "phash":
    import torch, transformers  # noqa: F401
if {baseline!r}:
    print(json.dumps({{"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
    sys.exit(0)
opts = DedupOptions(mode={mode!r})
t0 = time.perf_counter()
run = run_dedup({folder!r}, opts, db_path={db!r}, model={model!r}, batch_size={batch!r}, device="cpu")
t1 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
again = run_dedup({folder!r}, opts, db_path={db!r}, model={model!r}, batch_size={batch!r}, device="cpu")
t2 = time.perf_counter()
grown = {{}}
if {extra!r}:  # the folder grows: new files moved in, a third run
    inside = os.path.join({folder!r}, "zz-added")
    os.rename({extra!r}, inside)
    try:
        t3 = time.perf_counter()
        g = run_dedup({folder!r}, opts, db_path={db!r}, model={model!r}, batch_size={batch!r}, device="cpu")
        grown = {{"grown_s": time.perf_counter() - t3, "grown_read": g.counts["files_read"],
                  "grown_computed": g.counts["hashes_computed"], "grown_files": g.counts["files_found"]}}
    finally:
        os.rename(inside, {extra!r})
print(json.dumps({{"first_s": t1 - t0, "second_s": t2 - t1, "peak_mib": peak, "groups": len(run.groups),
                   "files": run.counts["files_found"], "errors": len(run.errors),
                   "second_read": again.counts["files_read"], "second_computed": again.counts["hashes_computed"],
                   **grown}}))
"""


def run_child(**kw) -> dict:
    code = _CHILD.format(root=str(ROOT), **kw)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, nargs="+", default=[2500, 10000])
    ap.add_argument("--mode", choices=["phash", "hybrid", "clip"], default="phash")
    ap.add_argument("--model", default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--keep", help="folder to keep the generated images in (reused between calls)")
    ap.add_argument("--grow", type=int, default=100,
                    help="then add this many new images to the folder and time a third run (0: skip)")
    args = ap.parse_args()
    model = args.model
    if model == "tiny-clip":
        from tests.tiny_clip import make_tiny_clip

        model = str(make_tiny_clip(Path(tempfile.mkdtemp(prefix="maya-bench-clip-"))))
    if args.mode != "phash" and not model:
        raise SystemExit("--mode hybrid/clip needs --model (efficientnet-lite0, a CLIP folder, or tiny-clip)")

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="maya-bench-dedup-"))
    baseline = run_child(folder="", db="", mode=args.mode, model=model, batch=args.batch_size, baseline=True,
                         extra="")
    print(f"mode {args.mode}, model {args.model or '-'}, batch {args.batch_size or 'default'}, "
          f"{args.side}x{args.side} PNG + JPEG copies; baseline (imports only) {baseline['peak_mib']:.0f} MiB")
    print(f"{'images':>8} {'files':>7} {'first_s':>8} {'second_s':>9} {'files/s':>8} {'peak_MiB':>9} "
          f"{'data_MiB':>9} {'groups':>7}")
    grown = []
    for n in args.images:
        folder = base / f"n{n}"
        t = time.perf_counter()
        make_images(folder, n, args.side)
        extra = ""
        if args.grow:
            extra = str(base / f"n{n}-added-{args.grow}")
            make_images(Path(extra), args.grow, args.side, seed=1)
        made = time.perf_counter() - t
        with tempfile.TemporaryDirectory(prefix="maya-bench-db-") as d:
            r = run_child(folder=str(folder), db=os.path.join(d, "maya.duckdb"), mode=args.mode, model=model,
                          batch=args.batch_size, baseline=False, extra=extra)
        assert r["second_read"] == 0 and r["second_computed"] == 0, r
        print(f"{n:>8} {r['files']:>7} {r['first_s']:>8.1f} {r['second_s']:>9.1f} {r['files'] / r['first_s']:>8.0f} "
              f"{r['peak_mib']:>9.0f} {r['peak_mib'] - baseline['peak_mib']:>9.0f} {r['groups']:>7}"
              f"   (images made in {made:.0f} s)")
        if args.grow:
            grown.append((n, r))
    for n, r in grown:
        new = r["grown_files"] - r["files"]
        print(f"grown folder {n:,} + {new:,} files: {r['grown_read']:,} read, {r['grown_computed']:,} hashes computed, "
              f"{r['grown_s']:.2f} s against {r['first_s']:.1f} s for the first run")
        print(f"grown_run_{n}: seconds={r['grown_s']:.2f} first_seconds={r['first_s']:.1f} "
              f"ratio={r['grown_s'] / r['first_s']:.3f} files_read={r['grown_read']}")
    if not args.keep:
        import shutil

        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
