"""Embedding backends: tiny CLIP through the real from_pretrained path, EfficientNet-Lite0 with its
real ImageNet weights, preprocessing against transformers' processor, load failures, OOM backoff."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import io  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from maya.embedding import models as embedders  # noqa: E402
from maya.embedding.devices import cpu_supports_bf16, pick_device, resolve_precision  # noqa: E402
from maya.embedding.embedder import _is_out_of_memory, _run_with_backoff  # noqa: E402
from maya.embedding.models import (  # noqa: E402
    EFFICIENTNET_NAME,
    ImagePreprocessing,
    ModelLoadError,
    default_batch_size,
    embed_stream,
    load_embedder,
)
from tests.conftest import photo  # noqa: E402
from tests.tiny_clip import TINY_EMBED_DIM, TINY_IMAGE_SIZE, make_tiny_clip  # noqa: E402

SKIMAGE_DATA = Path(__import__("skimage.data").data.__file__).parent
#: Distinct real photos shipped by scikit-image (colour and grey, 191 to 1411 px).
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "camera", "coins", "moon", "page", "brick",
          "grass", "gravel", "hubble_deep_field", "ihc", "retina", "text")


@pytest.fixture(scope="module")
def photos():
    return [photo(name) for name in PHOTOS]


@pytest.fixture(scope="module")
def tiny(tiny_clip_dir):
    return load_embedder(str(tiny_clip_dir), device="cpu")


@pytest.fixture(scope="module")
def effnet():
    return load_embedder(EFFICIENTNET_NAME, device="cpu", precision="fp32", runtime="torch")


# ------------------------------------------------------------------ tiny CLIP, loaded from a folder

def test_tiny_clip_folder_loads_with_its_shape_and_identity(tiny, tiny_clip_dir):
    assert (tiny.dim, tiny.input_size, tiny.precision, tiny.device.type) == (TINY_EMBED_DIM, TINY_IMAGE_SIZE,
                                                                             "fp32", "cpu")
    assert tiny.name == str(tiny_clip_dir)
    path, _, rest = tiny.model_id.partition("#")
    assert path == str(Path(tiny_clip_dir).resolve())
    digest, *suffixes = rest.split("|")
    assert len(digest) == 12 and int(digest, 16) >= 0
    assert suffixes == ["pp3"]  # pp3: Pillow resizes (pp2: the decode composites transparency for contrast)
    assert tiny.batch_size == default_batch_size("cpu") == 16


def test_embeddings_are_unit_float32_rows_in_input_order(tiny, photos):
    v = tiny.embed_images(photos)
    assert v.shape == (len(photos), TINY_EMBED_DIM) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(tiny.embed_images(photos[3:4])[0], v[3], atol=1e-6)
    assert np.abs(v[0] - v[1]).max() > 1e-3  # different photos, different vectors
    assert tiny.embed_images([]).shape == (0, TINY_EMBED_DIM)


def test_embeddings_are_deterministic_across_loads(tiny, tiny_clip_dir, photos):
    again = load_embedder(str(tiny_clip_dir), device="cpu")
    assert again.model_id == tiny.model_id
    np.testing.assert_array_equal(again.embed_images(photos[:4]), tiny.embed_images(photos[:4]))


def test_batch_size_does_not_change_embeddings(tiny, photos):
    one = tiny.embed_images(photos[:9], batch_size=1)
    eight = tiny.embed_images(photos[:9], batch_size=8)
    np.testing.assert_allclose(one, eight, atol=1e-5)


def test_model_id_follows_the_weights(tmp_path, tiny, tiny_clip_dir, photos):
    same = _copy_checkpoint(Path(tiny_clip_dir), tmp_path / "same")
    other = make_tiny_clip(tmp_path / "other", seed=1)
    digest = tiny.model_id.split("#")[1].split("|")[0]
    # same bytes, same digest
    assert load_embedder(str(same), device="cpu").model_id == f"{same.resolve()}#{digest}|pp3"
    changed = load_embedder(str(other), device="cpu")
    assert changed.model_id.split("#")[1].split("|")[0] != digest
    assert np.abs(changed.embed_images(photos[:2]) - tiny.embed_images(photos[:2])).max() > 1e-3


def test_model_id_is_known_before_loading(tiny, tiny_clip_dir, tmp_path):
    assert embedders.model_id_for(str(tiny_clip_dir)) == tiny.model_id
    assert embedders.model_id_for(str(tiny_clip_dir), "bf16") == tiny.model_id.replace("|pp3", "|bf16|pp3")
    assert embedders.model_id_for(EFFICIENTNET_NAME, "fp16") == "efficientnet-lite0|fp16|pp3"
    assert embedders.model_id_for(str(tmp_path / "missing")) is None
    assert embedders.model_id_for("some-org/not-cached-clip") is None


def test_model_id_names_precision(tiny_clip_dir):
    if not cpu_supports_bf16():
        pytest.skip("no native bf16 on this CPU")
    bf16 = load_embedder(str(tiny_clip_dir), device="cpu", precision="bf16")
    assert bf16.precision == "bf16" and bf16.model_id.endswith("|bf16|pp3")


def test_full_clip_and_tower_give_the_same_embedding(tiny, tiny_clip_dir, photos):
    from transformers import CLIPModel

    full = CLIPModel.from_pretrained(str(tiny_clip_dir)).eval()
    x = tiny.preprocess(photos[:3])
    with torch.inference_mode():
        ref = torch.nn.functional.normalize(full.get_image_features(pixel_values=x).pooler_output, dim=1)
    np.testing.assert_allclose(tiny.embed_tensor(x), ref.numpy(), atol=1e-6)


def test_uint8_input_is_normalised_like_preprocess(tiny, photos):
    pre = tiny.preprocessing
    u8 = pre.stack_uint8([pre.to_uint8(p) for p in photos[:4]])
    assert u8.dtype == np.uint8 and u8.shape == (4, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)
    np.testing.assert_allclose(tiny.embed_tensor(u8), tiny.embed_images(photos[:4]), atol=1e-6)


# ------------------------------------------------------------------ hub ids and the local cache

def test_uncached_hub_id_fails_fast_offline():
    start = time.perf_counter()
    with pytest.raises(ModelLoadError) as err:
        load_embedder("openai/clip-vit-base-patch32-not-cached-here")
    assert time.perf_counter() - start < 1.0
    msg = str(err.value)
    assert "openai/clip-vit-base-patch32-not-cached-here" in msg and "\n" not in msg
    assert "--model DIR" in msg and EFFICIENTNET_NAME in msg


class _SilentServer:
    """A TCP endpoint that accepts connections and never answers: the case that hangs transformers."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        return self

    def __exit__(self, *exc):
        self.sock.close()


@pytest.mark.slow
def test_uncached_hub_id_with_a_stalled_hub_fails_in_seconds(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    outcome = {}

    def load():
        try:
            load_embedder("some-org/some-clip")
        except ModelLoadError as e:
            outcome["error"] = e

    with _SilentServer() as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        start = time.perf_counter()
        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        worker.join(timeout=15)
        elapsed = time.perf_counter() - start
    assert not worker.is_alive(), "load_embedder hung on a hub that never answers"
    assert elapsed < 5.0
    assert "some-org/some-clip" in str(outcome["error"]) and "does not answer" in str(outcome["error"])


def test_hub_id_is_served_from_the_cache_with_its_commit(monkeypatch, tmp_path, tiny, tiny_clip_dir, photos):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--maya-test--tiny-clip"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in Path(tiny_clip_dir).iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))

    cached = load_embedder("maya-test/tiny-clip", device="cpu")
    assert cached.model_id == f"maya-test/tiny-clip@{commit}|pp3"
    assert cached.name == "maya-test/tiny-clip"
    np.testing.assert_array_equal(cached.embed_images(photos[:3]), tiny.embed_images(photos[:3]))


# ------------------------------------------------------------------ folders that are not models

def _copy_checkpoint(src: Path, dst: Path, skip: str = "") -> Path:
    dst.mkdir()
    for f in src.iterdir():
        if f.name != skip:
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_bad_folders_fail_with_a_message_that_says_what_is_wrong(tmp_path, tiny_clip_dir):
    src = Path(tiny_clip_dir)
    cases = {
        "no such folder": (str(tmp_path / "nope"), "does not exist"),
        "a file": (str(src / "config.json"), "is a file, not a folder"),
        "empty folder": (str(tmp_path), "no config.json"),
        "no processor": (str(_copy_checkpoint(src, tmp_path / "np", skip="preprocessor_config.json")),
                         "no preprocessor_config.json"),
        "no weights": (str(_copy_checkpoint(src, tmp_path / "nw", skip="model.safetensors")), "no weights file"),
    }
    corrupt = _copy_checkpoint(src, tmp_path / "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"not a safetensors file at all")
    cases["corrupt weights"] = (str(corrupt), "could not be loaded")
    other = _copy_checkpoint(src, tmp_path / "bert")
    (other / "config.json").write_text('{"model_type": "bert"}')
    cases["not clip"] = (str(other), "not CLIP")
    for label, (name, expected) in cases.items():
        with pytest.raises(ModelLoadError) as err:
            load_embedder(name)
        assert expected in str(err.value), label
        assert "\n" not in str(err.value), label


def test_unknown_precision_and_device_are_value_errors(tiny_clip_dir):
    with pytest.raises(ValueError, match="fp16 is not supported on the CPU"):
        load_embedder(str(tiny_clip_dir), device="cpu", precision="fp16")
    with pytest.raises(ValueError, match="unknown precision"):
        load_embedder(str(tiny_clip_dir), device="cpu", precision="fp8")


# ------------------------------------------------------------------ devices

def test_device_and_precision_rules():
    cpu = torch.device("cpu")
    assert pick_device("cpu") == cpu
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            pick_device("cuda")
        assert pick_device(None).type in ("cpu", "mps")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("bfloat16", cpu) == "bf16"
    assert resolve_precision("FP32", "cuda") == "fp32"
    with pytest.raises(ValueError, match="bf16"):
        resolve_precision("fp16", cpu)
    assert isinstance(cpu_supports_bf16(), bool)
    assert default_batch_size(torch.device("cuda")) > default_batch_size(cpu)


# ------------------------------------------------------------------ preprocessing

def _skimage_files():
    return sorted(p for p in SKIMAGE_DATA.iterdir() if p.suffix in (".png", ".jpg"))


@pytest.mark.slow
@pytest.mark.parametrize("size,crop", [(224, 224), (256, 224), (200, 224)])
def test_torch_preprocessing_matches_clip_image_processor(size, crop):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    processor = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": crop, "width": crop})
    ours = ImagePreprocessing.from_processor_config(processor.to_dict())
    worst = 0.0
    means = []
    files = _skimage_files()
    assert len(files) >= 20  # RGB, L, RGBA photos of many shapes, some smaller than the crop
    for path in files:
        with Image.open(path) as im:
            im.load()
            ref = processor(images=im, return_tensors="pt")["pixel_values"]
            got = ours([im])
        assert got.shape == ref.shape == (1, 3, crop, crop) and got.dtype == np.float32
        diff = np.abs(got - ref.numpy())
        worst = max(worst, float(diff.max()))
        means.append(float(diff.mean()))
    # Both resize uint8 with PIL's antialiased bicubic; they differ by rounding (1-2 grey levels).
    assert worst < 0.05, worst
    assert np.mean(means) < 1e-3


def test_preprocessing_reads_square_resize_and_rejects_what_it_cannot_do():
    square = ImagePreprocessing.from_processor_config(
        {"size": {"height": 48, "width": 48}, "do_center_crop": False, "resample": 2})
    x = square([photo("coffee")])
    assert x.shape == (1, 3, 48, 48) and square.resample == "bilinear"
    assert square.min_source_side == 48
    with pytest.raises(ValueError, match="resample"):
        ImagePreprocessing.from_processor_config({"resample": 1})
    with pytest.raises(ValueError, match="longest_edge"):
        ImagePreprocessing.from_processor_config({"size": {"shortest_edge": 224, "longest_edge": 500}})


def test_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (40, 40), (255, 0, 0, 0))  # fully transparent red
    pre = ImagePreprocessing(shortest_side=32, crop_hw=(32, 32), mean=(0, 0, 0), std=(1, 1, 1))
    np.testing.assert_allclose(pre([rgba]), 1.0)


# ------------------------------------------------------------------ out-of-memory backoff

class FakeOOM(Exception):
    pass


def test_backoff_halves_on_oom_and_keeps_the_smaller_size():
    calls, shrinks = [], []

    def fn(chunk):
        calls.append(len(chunk))
        if len(chunk) > 3:
            raise FakeOOM
        return list(chunk)

    out = _run_with_backoff(fn, list(range(10)), 8, lambda e: isinstance(e, FakeOOM), on_oom=shrinks.append)
    assert [x for part in out for x in part] == list(range(10))
    assert calls == [8, 4, 2, 2, 2, 2, 2]
    assert shrinks == [4, 2]


def test_backoff_reraises_at_size_one_and_passes_other_errors_through():
    def always_oom(chunk):
        raise FakeOOM

    with pytest.raises(FakeOOM):
        _run_with_backoff(always_oom, [1, 2, 3], 4, lambda e: isinstance(e, FakeOOM))
    calls = []

    def broken(chunk):
        calls.append(len(chunk))
        raise KeyError("bug")

    with pytest.raises(KeyError):
        _run_with_backoff(broken, [1, 2, 3], 4, lambda e: isinstance(e, FakeOOM))
    assert calls == [3]


def test_oom_classifier_knows_torch_oom():
    assert _is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert _is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not _is_out_of_memory(RuntimeError("shape mismatch"))


def test_embedder_remembers_the_batch_that_fits(tiny_clip_dir, tiny, photos):
    class SmallGPU(embedders.CLIPEmbedder):
        """The tiny CLIP on a pretend device that holds 3 images at a time."""

        seen: list = []

        def _features(self, x):
            self.seen.append(len(x))
            if len(x) > 3:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super()._features(x)

    loaded = load_embedder(str(tiny_clip_dir), device="cpu")
    small = SmallGPU(loaded.model, loaded.preprocessing, name=loaded.name, model_id_base="t", dim=loaded.dim,
                     device=loaded.device, precision="fp32")
    v = small.embed_images(photos[:10], batch_size=8)
    np.testing.assert_allclose(v, tiny.embed_images(photos[:10]), atol=1e-5)
    assert small.seen[:3] == [8, 4, 2]
    assert small._fits == 2 and max(small.seen[3:]) == 2  # later batches start at the size that fit


# ------------------------------------------------------------------ streaming files

def test_embed_stream_keeps_order_and_reports_bad_files(tmp_path, tiny, photos):
    paths = []
    for i, im in enumerate(photos[:7]):
        p = tmp_path / f"{i}.jpg"
        im.save(p, quality=90)
        paths.append(p)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff this is not a jpeg")
    paths.insert(3, bad)
    batches = list(embed_stream(tiny, paths, batch_size=3, workers=2, prefetch_batches=1))
    assert [len(b.items) + len(b.failures) for b in batches] == [3, 3, 2]
    assert [f[0] for b in batches for f in b.failures] == [bad]
    assert "ImageLoadError" in batches[1].failures[0][1]
    items = [p for b in batches for p in b.items]
    assert items == [p for p in paths if p != bad]
    vectors = np.concatenate([b.vectors for b in batches])
    from maya.io import images as imageio

    expected = tiny.embed_images([imageio.load_image(p, min_side=TINY_IMAGE_SIZE).image for p in items])
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


# ------------------------------------------------------------------ EfficientNet-Lite0, real weights

IMAGENET = {"cat": {281, 282, 285, 287}, "espresso": {967, 968, 504}, "missile": {657, 744, 812}}


@pytest.mark.slow
def test_effnet_preprocessing_gives_sensible_imagenet_predictions(effnet):
    assert (effnet.dim, effnet.input_size, effnet.model_id) == (1280, 224, "efficientnet-lite0|pp3")
    x = effnet.preprocess([photo("chelsea"), photo("coffee"), photo("rocket")])
    with torch.inference_mode():
        top1 = effnet.model(x).argmax(dim=1).tolist()
    assert top1[0] in IMAGENET["cat"] and top1[1] in IMAGENET["espresso"] and top1[2] in IMAGENET["missile"]


def _edited(im: Image.Image) -> Image.Image:
    """Smaller, cropped by 6% on each side, re-saved as JPEG quality 40."""
    w, h = im.size
    im = im.crop((int(0.06 * w), int(0.06 * h), int(0.94 * w), int(0.94 * h)))
    im = im.resize((int(im.width * 0.6), int(im.height * 0.6)), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=40)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


@pytest.mark.slow
def test_effnet_finds_the_original_of_an_edited_photo(effnet, photos):
    originals = effnet.embed_images(photos)
    edits = effnet.embed_images([_edited(p) for p in photos])
    sims = edits @ originals.T  # cosine: rows are unit vectors
    assert (sims.argmax(axis=1) == np.arange(len(photos))).all(), np.round(sims, 3)
    own = np.diag(sims)
    others = np.where(np.eye(len(photos), dtype=bool), -1, sims).max(axis=1)
    # One threshold separates every edited copy from every other photo (measured: 0.76 vs 0.53).
    assert own.min() > others.max() + 0.05, (own, others)


@pytest.mark.slow
def test_bf16_on_cpu_is_close_to_fp32(effnet, tiny_clip_dir, photos):
    if not cpu_supports_bf16():
        pytest.skip("no native bf16 on this CPU")
    for fp32 in (effnet, load_embedder(str(tiny_clip_dir), device="cpu")):
        bf16 = load_embedder(fp32.name, device="cpu", precision="bf16")
        cos = (bf16.embed_images(photos) * fp32.embed_images(photos)).sum(axis=1)
        assert cos.min() >= 0.99, (fp32.name, cos)


# ------------------------------------------------------------------ import cost

def test_import_does_not_load_torch():
    code = "import sys, maya.embedding.models, maya.embedding.devices; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["False", "False"]
