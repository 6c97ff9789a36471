"""Test setup: isolated Prefect home, no network for Hugging Face, tiny real models and photos."""

import os
import tempfile

# Before Prefect or transformers are imported anywhere (both read these at import time).
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="maya-prefect-test-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"
os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "WARNING"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# A user's MAYA_* settings must not leak into tests (MAYA_FUZZ_EXAMPLES is the tests' own knob).
for _k in [k for k in os.environ if k.startswith("MAYA_") and k != "MAYA_FUZZ_EXAMPLES"]:
    del os.environ[_k]
# ... nor their user config file: tests read one only where they write it.
os.environ["MAYA_CONFIG"] = os.path.join(tempfile.mkdtemp(prefix="maya-config-test-"), "config.toml")
# The ONNX export of efficientnet-lite0 (maya.embedding.onnx_runtime) is made once per test session, here,
# not in the user's cache folder.
os.environ["MAYA_MODEL_CACHE"] = tempfile.mkdtemp(prefix="maya-models-test-")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

#: Real photos shipped by scikit-image, used as originals.
PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "camera", "coins", "moon",
               "page", "brick", "grass", "gravel", "hubble_deep_field", "ihc")


def photo(name: str, side: int | None = None):
    """A scikit-image sample photo as an RGB PIL image, optionally scaled so its long side is ``side``."""
    from PIL import Image

    from maya.sample_photos import sample_photo_paths

    name = {"immunohistochemistry": "ihc"}.get(name, name)  # skimage's function name vs its file name
    path = next(p for p in sample_photo_paths() if p.stem == name)
    with Image.open(path) as im:
        img = im.convert("RGB")
    if side:
        scale = side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.LANCZOS)
    return img


def smooth_fields(folder: Path, seed: int, count: int = 48, copies: int = 8) -> None:
    """``count`` distinct smooth pictures in ``folder`` (random 6x6 colours, upscaled bicubic to 256 px, as
    ``imgNNN.png``) and a JPEG copy (quality 85, ``imgNNN_copy.jpg``) of the first ``copies``: look-alikes whose
    only true pairs are the copies."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k in range(count):
        img = Image.fromarray((rng.random((6, 6, 3)) * 255).astype(np.uint8)).resize((256, 256),
                                                                                     Image.Resampling.BICUBIC)
        img.save(folder / f"img{k:03d}.png")
        if k < copies:
            img.save(folder / f"img{k:03d}_copy.jpg", quality=85)


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    """Eight real photos, 256 px on the long side, as JPEG and PNG files."""
    d = tmp_path_factory.mktemp("photos")
    for i, name in enumerate(PHOTO_NAMES[:8]):
        img = photo(name, 256)
        if i % 2:
            img.save(d / f"{name}.png")
        else:
            img.save(d / f"{name}.jpg", quality=92)
    return d


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> Path:
    """A tiny random CLIP saved with save_pretrained, loaded by tests through from_pretrained."""
    from tests.tiny_clip import make_tiny_clip

    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def prefect_server():
    """One temporary Prefect server for the whole session (flows need an API)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield
