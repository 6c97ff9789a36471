"""First vs second identical ``maya evaluate``: wall time of each, and the ratio.

The first run does real work (decode, pHash and embed every image with a real-size model); the second
finds every hash and embedding in DuckDB, takes the evaluation from the task cache, and does not load the
model. Both are timed as a user runs them: a fresh ``maya evaluate`` process each.

Two setups (``--setup``):

* ``ephemeral`` -- no PREFECT_API_URL: every command starts Prefect's temporary server (seconds);
* ``server``    -- a ``prefect server start`` on 127.0.0.1 (started here, temporary PREFECT_HOME), as the
  README recommends for repeated use.

Models (``--model``): ``vit-b32`` (default: a full-size ViT-B/32 CLIP image tower with random weights,
seeded, saved to a temporary folder; the same compute as openai/clip-vit-base-patch32, offline) or
``efficientnet-lite0`` (real ImageNet weights from the venv).

    python benchmarks/bench_rerun.py                      # both setups, ViT-B/32, ~500 images
    python benchmarks/bench_rerun.py --setup server --positives 8
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAYA = [sys.executable, "-m", "maya.cli"]
PREFECT = str(Path(sys.executable).parent / "prefect")


def make_vit_b32(folder: Path) -> Path:
    """A ViT-B/32 CLIP image tower (88 M parameters) with seeded random weights, saved with its preprocessing."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(projection_dim=512))
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_resize": True, "size": {"shortest_edge": 224}, "resample": 3, "do_center_crop": True,
        "crop_size": {"height": 224, "width": 224}, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "image_processor_type": "CLIPImageProcessor"}))
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env.update(PREFECT_HOME=str(home), PREFECT_API_URL=url, PREFECT_SERVER_API_HOST="127.0.0.1",
               PREFECT_SERVER_API_PORT=str(port))
    proc = subprocess.Popen([PREFECT, "server", "start"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the Prefect server did not start")


def timed_evaluate(env: dict, dataset: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(MAYA + ["evaluate", "--dataset", dataset], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"maya evaluate failed:\n{out.stdout}\n{out.stderr}")
    return seconds, out.stdout


def counts_line(stdout: str) -> str:
    m = re.search(r"^hashes: .*$", stdout, re.MULTILINE)
    return m.group(0) if m else "?"


def run_setup(setup: str, model: str, originals: Path, positives: int, work: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MAYA_"))}
    env.update(MAYA_MODEL=model, MAYA_DATA_DIR=str(work / f"data-{setup}"), MAYA_DEVICE="cpu",
               HF_HUB_OFFLINE="1", PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PREFECT_HOME=str(work / f"prefect-{setup}"))
    server = None
    if setup == "server":
        server, _ = start_server(work / f"prefect-{setup}", env)
    try:
        build = subprocess.run(MAYA + ["pairs", "build", str(originals), "--dataset", "bench",
                                       "--positives", str(positives)], env=env, capture_output=True, text=True)
        if build.returncode != 0:
            raise RuntimeError(build.stdout + build.stderr)
        first, out1 = timed_evaluate(env, "bench")
        second, out2 = timed_evaluate(env, "bench")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    return {"setup": setup, "first_s": first, "second_s": second, "ratio": first / second,
            "first": counts_line(out1), "second": counts_line(out2), "pairs": build.stdout.strip().splitlines()[0]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--setup", choices=["ephemeral", "server", "both"], default="both")
    p.add_argument("--model", default="vit-b32", help="vit-b32 (random full-size CLIP tower) or efficientnet-lite0")
    p.add_argument("--positives", type=int, default=16, help="edited copies per original (more: longer first run)")
    args = p.parse_args(argv)

    from maya.sample_photos import copy_sample_photos

    work = Path(tempfile.mkdtemp(prefix="maya-bench-rerun-"))
    try:
        originals = copy_sample_photos(work / "originals")
        model = str(make_vit_b32(work / "vit-b32")) if args.model == "vit-b32" else args.model
        setups = ["ephemeral", "server"] if args.setup == "both" else [args.setup]
        rows = [run_setup(s, model, originals, args.positives, work) for s in setups]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"model: {args.model}; {rows[0]['pairs']}")
    for r in rows:
        print(f"[{r['setup']}] first  maya evaluate: {r['first_s']:6.1f} s   {r['first']}")
        print(f"[{r['setup']}] second maya evaluate: {r['second_s']:6.1f} s   {r['second']}")
        print(f"[{r['setup']}] ratio first/second: {r['ratio']:.1f}x")
    print("ratio: " + ", ".join(f"{r['setup']} {r['ratio']:.1f}x" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
