"""Embedding throughput: image files -> embeddings, against the model alone, in one run.

    python benchmarks/bench_embed.py [--images DIR] [--model NAME] [--batch-size B]
                                     [--precision P] [--device D] [--workers W] [--count N] [--rounds R]

End to end = :func:`maya.embedding.models.embed_stream`: a thread pool reads and decodes files (JPEG at
reduced scale with Pillow's draft) and resizes them to the model input while the model runs,
through a bounded run-ahead window. Model only = :meth:`Embedder.embed_tensor` on a pre-made uint8
batch of the same size (the same normalise-on-device path). The two alternate for ``--rounds``
rounds, each over all files, so that a machine whose speed drifts (other tenants) affects both
alike; the CPU other processes used meanwhile is printed beside each. The last line is
``pipeline_efficiency: X`` = end-to-end img/s / model-only img/s (1.0: the model never waited).

``--model vit-b32-random`` is a randomly initialised full-size CLIP ViT-B/32 image tower
(CLIPVisionConfig defaults: 224 px, patch 32), for speed only. Without ``--images``, N synthetic
1024x768 JPEGs (quality 90) are made from scikit-image's photos in a temporary folder.
On CUDA, GPU utilisation is sampled with nvidia-smi during each phase.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402

RANDOM_VIT_B32 = "vit-b32-random"
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "camera", "coins", "moon", "brick", "grass", "gravel", "page", "clock", "text")


def make_synthetic_jpegs(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` distinct 1024x768 JPEGs (quality 90): random crops of upscaled skimage photos."""
    import skimage.data
    from concurrent.futures import ThreadPoolExecutor
    from PIL import Image

    bases = []
    for name in SKIMAGE_PHOTOS:
        arr = getattr(skimage.data, name)()
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        bases.append(Image.fromarray(arr[..., :3].astype(np.uint8)).resize((1400, 1050), Image.Resampling.BICUBIC))
    rng = np.random.default_rng(seed)
    jobs = [(i, int(rng.integers(len(bases))), int(rng.integers(0, 377)), int(rng.integers(0, 283)),
             bool(rng.integers(2))) for i in range(count)]

    def write(job) -> Path:
        i, b, x, y, flip = job
        im = bases[b].crop((x, y, x + 1024, y + 768))
        if flip:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        path = folder / f"synthetic_{i:05d}.jpg"
        im.save(path, quality=90)
        return path

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(write, jobs))


def build_embedder(name: str, device: str | None, precision: str, batch_size: int | None):
    from maya.embedding.models import load_embedder

    if name != RANDOM_VIT_B32:
        return load_embedder(name, device=device, precision=precision, batch_size=batch_size)
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from maya.embedding.devices import pick_device, resolve_precision
    from maya.embedding.models import CLIPEmbedder, ImagePreprocessing

    torch.manual_seed(0)
    config = CLIPVisionConfig()
    model = CLIPVisionModelWithProjection(config)
    dev = pick_device(device)
    return CLIPEmbedder(model, ImagePreprocessing(), name=name, model_id_base=name, dim=config.projection_dim,
                        device=dev, precision=resolve_precision(precision, dev), batch_size=batch_size)


class GpuUtilisation:
    """Samples ``nvidia-smi --query-gpu=utilization.gpu`` every ``period`` seconds in a thread."""

    def __init__(self, period: float = 0.2):
        self.period = period
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.available = shutil.which("nvidia-smi") is not None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5)
                self.samples.append(float(out.stdout.split()[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return
            self._stop.wait(self.period)

    def __enter__(self):
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.available:
            self._thread.join()


class OthersCpu:
    """CPU time other processes used during a phase, in core-seconds (/proc/stat minus this process).

    On a shared machine this says how much of a timing was someone else's; None where unknown.
    """

    def __enter__(self):
        self._start = (_machine_busy_seconds(), _own_cpu_seconds())
        return self

    def __exit__(self, *exc):
        busy, own = _machine_busy_seconds(), _own_cpu_seconds()
        self.seconds = None
        if busy is not None and self._start[0] is not None:
            self.seconds = max(0.0, (busy - self._start[0]) - (own - self._start[1]))


def _machine_busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as f:
            jiffies = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = jiffies[3] + jiffies[4]  # idle + iowait
    return (sum(jiffies) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class Phase:
    """Images, seconds, others' CPU and GPU utilisation samples of one kind of pass, over rounds."""

    def __init__(self, label: str):
        self.label, self.images, self.seconds, self.others_cpu, self.util = label, 0, 0.0, 0.0, []

    def add(self, images: int, seconds: float, others: OthersCpu, util: GpuUtilisation) -> None:
        self.images += images
        self.seconds += seconds
        self.others_cpu += others.seconds or 0.0
        self.util += util.samples

    @property
    def rate(self) -> float:
        return self.images / self.seconds


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, help="folder of images (default: synthetic JPEGs)")
    parser.add_argument("--model", default=RANDOM_VIT_B32, help=f"model name or {RANDOM_VIT_B32}")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--device", default=None)
    parser.add_argument("--workers", type=int, default=None, help="decode threads (default: by device)")
    parser.add_argument("--count", type=int, default=256, help="synthetic images to make without --images")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternations of a model-only and an end-to-end pass over all files (evens out drift)")
    args = parser.parse_args(argv)

    import torch

    from maya.embedding.embedder import _default_workers, embed_stream
    from maya.io.images import load_image

    tmp = None
    if args.images is None:
        tmp = tempfile.mkdtemp(prefix="maya-bench-")
        t0 = time.perf_counter()
        files = make_synthetic_jpegs(Path(tmp), args.count)
        print(f"made {len(files)} synthetic 1024x768 JPEGs in {time.perf_counter() - t0:.1f} s")
    else:
        files = sorted(p for p in args.images.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
        if not files:
            sys.exit(f"no images under {args.images}")
    try:
        embedder = build_embedder(args.model, args.device, args.precision, args.batch_size)
        bs = embedder.batch_size
        workers = args.workers or _default_workers(embedder.device)
        pre = embedder.preprocessing
        n_batches = -(-len(files) // bs)

        # Read + decode + resize alone, one thread, on a sample: what the workers must hide.
        sample = files[: min(32, len(files))]
        t0 = time.perf_counter()
        ready = [pre.to_uint8(load_image(p, min_side=pre.min_source_side).image) for p in sample]
        decode_ms = (time.perf_counter() - t0) / len(sample) * 1000
        batch = pre.stack_uint8((ready * (bs // len(ready) + 1))[:bs])  # a full batch of real pixels

        for _ in range(2):  # warm-up: kernels, allocator, oneDNN/cuDNN choices
            embedder.embed_tensor(batch)
        model_phase, e2e_phase = Phase("model only"), Phase("end to end (files)")
        model_seconds = 0.0
        embed_tensor = embedder.embed_tensor

        def timed_embed_tensor(x):
            nonlocal model_seconds
            t = time.perf_counter()
            out = embed_tensor(x)
            model_seconds += time.perf_counter() - t
            return out

        n_failed = 0
        for _ in range(args.rounds):
            with GpuUtilisation() as util, OthersCpu() as others:
                sync(embedder.device)
                t0 = time.perf_counter()
                for _ in range(n_batches):
                    embedder.embed_tensor(batch)
                sync(embedder.device)
                seconds = time.perf_counter() - t0
            model_phase.add(n_batches * bs, seconds, others, util)

            embedder.embed_tensor = timed_embed_tensor  # how long the model ran inside the stream
            done = 0
            with GpuUtilisation() as util, OthersCpu() as others:
                sync(embedder.device)
                t0 = time.perf_counter()
                for result in embed_stream(embedder, files, batch_size=bs, workers=workers):
                    done += len(result.items) + len(result.failures)
                    n_failed += len(result.failures)
                sync(embedder.device)
                seconds = time.perf_counter() - t0
            del embedder.embed_tensor
            e2e_phase.add(done, seconds, others, util)

        gpu = embedder.device.type == "cuda"
        card = f" ({torch.cuda.get_device_name(embedder.device)})" if gpu else ""
        print(f"model {embedder.model_id}  device {embedder.device}{card}  precision {embedder.precision}  "
              f"batch {bs}  torch threads {torch.get_num_threads()}  decode workers {workers}  "
              f"cpus {os.cpu_count()}  files {len(files)} x {args.rounds} rounds ({n_failed} failed)")
        print(f"read+decode+resize, 1 thread: {decode_ms:.2f} ms/img")
        print(f"{'phase':<22}{'img/s':>10}{'seconds':>10}{'others cpu':>14}  gpu util")
        for phase in (model_phase, e2e_phase):
            util = f"{np.mean(phase.util):.0f}%" if phase.util else "-"
            others = f"{phase.others_cpu / phase.seconds:.2f} cores"
            print(f"{phase.label:<22}{phase.rate:>10.1f}{phase.seconds:>10.2f}{others:>14}  {util}")
        print(f"model busy during end to end: {100 * model_seconds / e2e_phase.seconds:.1f}% of wall time")
        print(f"pipeline_efficiency: {e2e_phase.rate / model_phase.rate:.3f}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
