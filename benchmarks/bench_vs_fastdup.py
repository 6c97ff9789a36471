"""Maya's default dedup against fastdup on one folder of real-size photos: files per second and peak memory.

    python benchmarks/bench_vs_fastdup.py [DIR] [--model efficientnet-lite0] [--photos 600] [--side 3000]
        [--fastdup-python /work/venv-fastdup/bin/python] [--before REV] [--repeats 1]

DIR: a folder of photos (searched recursively). Without it, a folder is made from the scikit-image sample
photos: each scaled up to ``--side`` pixels on the long side and saved as JPEG (quality 90), plus light
edits (resize, re-encode, brightness) until there are ``--photos`` files, so there are duplicates to find.

Each tool runs in a fresh child process, one after the other, on the same folder: Maya as
``maya dedup DIR --model M`` does (``run_dedup``, a new DuckDB store, default mode hybrid, default device), fastdup
(when ``import fastdup`` works in ``--fastdup-python``; never a Maya dependency) as
``fastdup.create(work_dir, input_dir).run()``. Each child reports its wall time and its peak resident memory
(``ru_maxrss`` of the child and of the processes it starts, the larger). Before the timed runs the model is loaded
once in a child of its own (untimed): on a CPU that makes the one-time ONNX export of efficientnet-lite0 into the
model cache (``maya.embedding.onnx_runtime``), as fastdup's wheel ships its model ready to run. Prints both, then ``files_per_second_vs_fastdup: X`` (Maya's files/s over
fastdup's; ``n/a`` without fastdup) and ``peak_rss_mib: maya=A fastdup=B``. CPU seconds (user + system, the
child and its children) are printed beside each wall time: on a shared machine they move less than wall time.

``--before REV``: Maya as of git revision REV (``git archive`` of this repository into a temporary folder, put
first on ``sys.path``; SQL files come from this checkout) runs too, in the same run, and the line
``maya_vs_before: X`` gives today's files/s over that baseline's. ``--repeats N`` runs the tools N times,
alternating (maya, before, fastdup, maya, ...), and reports each tool's best run (least wall time), so a
burst of load from another tenant does not decide the ratio; every run is printed.
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
sys.path.insert(0, str(ROOT))


def make_photos(folder: Path, count: int, side: int) -> int:
    """Real photos at ``side`` px (long side) plus light edits of them: ``count`` JPEG files in all."""
    from PIL import Image, ImageEnhance

    from maya.sample_photos import sample_photo_paths

    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f".complete-{count}-{side}"
    if marker.exists():
        return count
    sources = sample_photo_paths()
    made = 0
    k = 0
    while made < count:
        src = sources[k % len(sources)]
        with Image.open(src) as im:
            img = im.convert("RGB")
        scale = side / max(img.size) * (1.0 - 0.02 * (k // len(sources)))
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BICUBIC)
        img.save(folder / f"p{k:05d}.jpg", quality=90)
        made += 1
        if made < count and k % 3 == 0:
            ImageEnhance.Brightness(img).enhance(1.08).save(folder / f"p{k:05d}-edit.jpg", quality=80)
            made += 1
        k += 1
    marker.write_text(str(made))
    return made


_MAYA = r"""
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
import maya
assert maya.__file__.startswith({root!r}), maya.__file__
from maya.dedup.options import DedupOptions
from maya.dedup.pipeline import run_dedup
t0 = time.perf_counter()
run = run_dedup({folder!r}, DedupOptions(), db_path={db!r}, model={model!r})
own = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({{"seconds": time.perf_counter() - t0, "files": run.counts["files_found"],
                   "peak_mib": max(own.ru_maxrss, kids.ru_maxrss) / 1024,
                   "cpu_seconds": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime,
                   "groups": len(run.groups), "torch": "torch" in sys.modules}}))
"""

_FASTDUP = r"""
import json, resource, time
import fastdup
t0 = time.perf_counter()
fd = fastdup.create(work_dir={work!r}, input_dir={folder!r})
fd.run(overwrite=True)
own = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({{"seconds": time.perf_counter() - t0, "peak_mib": max(own.ru_maxrss, kids.ru_maxrss) / 1024,
                   "cpu_seconds": own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime}}))
"""


def child(code: str, python: str = sys.executable) -> dict:
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


_PREPARE = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from maya.embedding.models import load_embedder
t0 = time.perf_counter()
e = load_embedder({model!r})
print(json.dumps({{"seconds": time.perf_counter() - t0, "runtime": getattr(e, "runtime", "torch"),
                   "source": str(getattr(e, "source", None))}}))
"""


def prepare_model(root: Path, model: str) -> None:
    """Load the model once in a child before any timed run, so that a first-ever ONNX export (once per weights
    file, into the model cache, like a download) is not timed; prints what the load found."""
    r = child(_PREPARE.format(root=str(root), model=model))
    print(f"model {model}: {r['runtime']} ({r['source']}), ready in {r['seconds']:.1f} s (not timed)")


def maya_run(root: Path, folder: Path, model: str) -> dict:
    """One ``run_dedup`` of ``folder`` by the Maya under ``root``, in a fresh child with a new store."""
    with tempfile.TemporaryDirectory(prefix="maya-bench-") as d:
        return child(_MAYA.format(root=str(root), folder=str(folder), db=os.path.join(d, "maya.duckdb"), model=model))


def fastdup_run(python: str, folder: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="fastdup-bench-") as work:
        return child(_FASTDUP.format(work=work, folder=str(folder)), python)


def checkout(rev: str, into: Path) -> Path:
    """The tree of git revision ``rev`` of this repository, unpacked under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"--before {rev}: git archive failed: {archive.stderr.decode(errors='replace')[-500:]}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", nargs="?")
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--photos", type=int, default=600)
    ap.add_argument("--side", type=int, default=3000)
    ap.add_argument("--fastdup-python", default=sys.executable,
                    help="interpreter that has fastdup (fastdup 2.x pins numpy 1.26 and Pillow 10.3, older than "
                         "Maya's: give it a virtualenv of its own)")
    ap.add_argument("--before", metavar="REV", help="also run Maya as of this git revision (the baseline)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per tool, alternating; the best of each is compared")
    args = ap.parse_args(argv)
    folder = Path(args.folder) if args.folder else Path(tempfile.gettempdir()) / f"maya-bench-photos-{args.photos}-{args.side}"
    if not args.folder:
        make_photos(folder, args.photos, args.side)
    files = sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    print(f"{files:,} files under {folder}, {os.cpu_count()} CPUs")
    probe = subprocess.run([args.fastdup_python, "-c", "import fastdup"], capture_output=True, text=True)
    has_fastdup = probe.returncode == 0  # not installed there, or its binary does not load
    if not has_fastdup:
        print(f"fastdup: not available in {args.fastdup_python} ({probe.stderr.strip().splitlines()[-1:]})")
    with tempfile.TemporaryDirectory(prefix="maya-before-") as before_dir:
        prepare_model(ROOT, args.model)
        tools = {"maya": lambda: maya_run(ROOT, folder, args.model)}
        if args.before:
            old = checkout(args.before, Path(before_dir))
            tools["maya-before"] = lambda: maya_run(old, folder, args.model)
        if has_fastdup:
            tools["fastdup"] = lambda: fastdup_run(args.fastdup_python, folder)
        best: dict[str, dict] = {}
        for rep in range(max(1, args.repeats)):
            for name, run in tools.items():
                r = run()
                load = os.getloadavg()[0]
                extra = f", {r['groups']} groups" if "groups" in r else ""
                extra += ", torch imported" if r.get("torch") else ""
                print(f"run {rep + 1} {name}: {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU, "
                      f"{files / r['seconds']:.2f} files/s, peak {r['peak_mib']:.0f} MiB{extra} (load {load:.1f})",
                      flush=True)
                if name not in best or r["seconds"] < best[name]["seconds"]:
                    best[name] = r
    for name, r in best.items():
        print(f"best {name}: {r['seconds']:.1f} s, {files / r['seconds']:.2f} files/s, {r['cpu_seconds']:.1f} s CPU, "
              f"peak {r['peak_mib']:.0f} MiB")
    maya = best["maya"]
    if "maya-before" in best:
        print(f"maya_vs_before: {best['maya-before']['seconds'] / maya['seconds']:.2f} "
              f"(CPU {best['maya-before']['cpu_seconds'] / maya['cpu_seconds']:.2f}; "
              f"peak {maya['peak_mib']:.0f} vs {best['maya-before']['peak_mib']:.0f} MiB)")
    if not has_fastdup:
        print("files_per_second_vs_fastdup: n/a")
        print(f"peak_rss_mib: maya={maya['peak_mib']:.0f} fastdup=n/a")
        return 0
    fd = best["fastdup"]
    print(f"files_per_second_vs_fastdup: {fd['seconds'] / maya['seconds']:.2f} "
          f"(CPU seconds: {fd['cpu_seconds'] / maya['cpu_seconds']:.2f})")
    print(f"peak_rss_mib: maya={maya['peak_mib']:.0f} fastdup={fd['peak_mib']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
