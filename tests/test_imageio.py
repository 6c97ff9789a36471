"""maya.io.images: every hostile file loads or fails with the right reason; pixels come out right."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from maya.io.images import (
    DEFAULT_MIN_SIDE,
    REASONS,
    ImageLoadError,
    LoadedImage,
    decode_image,
    load_image,
    read_file,
    sha256_file,
)
from tests.hostile import (
    FIRST_FRAME_RGB,
    ORIENTATION_NAMES,
    PERMISSION_DENIED_NAME,
    PHOTO_SIZE,
    bomb_png,
    build_hostile_corpus,
    encode,
    grey16_ramp,
    permissions_enforced,
    restore_permissions,
    upright_photo,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str | None]]:
    root = tmp_path_factory.mktemp("hostile")
    expected = build_hostile_corpus(root)
    yield root, expected
    restore_permissions(root)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return upright_photo()


def rgb(loaded: LoadedImage) -> np.ndarray:
    assert loaded.image.mode == "RGB"
    return np.asarray(loaded.image, dtype=np.float64)


def mean_abs_diff(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


# --------------------------------------------------------------------------- the corpus


def test_corpus_is_small_and_quick_to_build(tmp_path):
    start = time.perf_counter()
    expected = build_hostile_corpus(tmp_path)
    elapsed = time.perf_counter() - start
    try:
        total = sum(p.lstat().st_size for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink())
        assert elapsed < 1.0, f"corpus took {elapsed:.2f} s to build"
        assert total < 2_000_000, f"corpus is {total:,} bytes"
        assert len(expected) >= 35
        assert set(expected.values()) - {None} <= REASONS
        # Every reason a file can produce is represented at least once.
        assert {"missing", "unreadable", "is_directory", "empty", "not_an_image", "truncated",
                "too_large", "unsupported", "corrupt"} <= set(expected.values())
    finally:
        restore_permissions(tmp_path)


def test_every_corpus_entry_loads_or_fails_with_its_reason(corpus):
    root, expected = corpus
    got: dict[str, str | None] = {}
    for name, reason in expected.items():
        try:
            loaded = load_image(root / name)
        except ImageLoadError as e:
            got[name] = e.reason
            assert e.path == os.fsdecode(root / name)
            line = str(e)
            assert line.startswith(f"{e.reason}: ") and "\n" not in line
            line.encode("utf-8")  # printable even for the non-UTF-8 file name
        else:
            got[name] = None
            assert loaded.image.mode == "RGB"
            assert min(loaded.image.size) >= min(DEFAULT_MIN_SIDE, loaded.width, loaded.height)
    mismatches = {n: (expected[n], got[n]) for n in expected if expected[n] != got[n]}
    assert mismatches == {}, "name: (expected, got)"


def test_permission_denied_is_unreadable(corpus):
    root, _ = corpus
    if permissions_enforced(root):
        with pytest.raises(ImageLoadError) as info:
            load_image(root / PERMISSION_DENIED_NAME)
        assert info.value.reason == "unreadable"
        assert "permission denied" in str(info.value)
        return
    # Root ignores mode 000, so check the same thing in a forked child that drops to user "nobody".
    if os.geteuid() != 0 or not hasattr(os, "fork"):
        pytest.skip("permissions are not enforced for this user and it cannot switch users")
    tmp = Path(tempfile.mkdtemp(prefix="maya-perm-"))
    try:
        tmp.chmod(0o755)  # traversable by nobody; only the file itself is locked
        locked = tmp / "locked.png"
        locked.write_bytes(encode(Image.new("RGB", (4, 4)), "PNG"))
        locked.chmod(0)
        assert _reason_as_nobody(locked) == "unreadable"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _reason_as_nobody(path: Path) -> str:
    """load_image(path) in a forked child running as uid/gid 65534; its outcome as a string."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        outcome = "child failed"
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                load_image(path)
                outcome = "loaded"
            except ImageLoadError as e:
                outcome = e.reason
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            outcome = f"child error {e!r}"
        finally:
            os.write(write_end, outcome.encode())
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    return outcome


@pytest.mark.parametrize("orientation", sorted(ORIENTATION_NAMES))
def test_exif_orientation_gives_the_upright_photo(corpus, photo, orientation):
    root, _ = corpus
    loaded = load_image(root / ORIENTATION_NAMES[orientation])
    assert (loaded.width, loaded.height) == PHOTO_SIZE
    assert loaded.image.size == PHOTO_SIZE
    diff = mean_abs_diff(loaded.image, photo)
    assert diff < 5.0  # JPEG q92 of a detailed photo: 3.3 measured; wrong placements are > 45
    # ... and no other of the 8 placements is as close (a wrong table would pick one of them).
    for method in Image.Transpose:
        other = photo.transpose(method)
        if other.size == PHOTO_SIZE and not np.array_equal(np.asarray(other), np.asarray(photo)):
            assert mean_abs_diff(loaded.image, other) > 5 * diff + 10
    # Same pixels as Pillow's own exif_transpose on a full decode.
    with Image.open(root / ORIENTATION_NAMES[orientation]) as im:
        reference = ImageOps.exif_transpose(im).convert("RGB")
    full = load_image(root / ORIENTATION_NAMES[orientation], min_side=None)
    assert np.array_equal(np.asarray(full.image), np.asarray(reference))


def test_rotated_large_jpeg_is_drafted_and_reports_the_upright_size(tmp_path, photo):
    upright = photo.resize((640, 1024), Image.Resampling.BICUBIC)  # portrait
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, "rotate 90 clockwise to view"
    path = tmp_path / "portrait.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, quality=90, exif=exif)
    loaded = load_image(path)
    assert (loaded.width, loaded.height) == (640, 1024)
    w, h = loaded.image.size
    assert w < h and 256 <= w < 512
    assert (w, h) == (320, 512)  # DCT scale 1/2: both stored sides stay >= 256
    assert mean_abs_diff(loaded.image, upright.resize((w, h), Image.Resampling.BOX)) < 4


def test_sixteen_bit_png_is_scaled_not_clipped(corpus):
    root, _ = corpus
    loaded = load_image(root / "grey16.png")
    pixels = np.asarray(loaded.image).astype(np.int64)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    expected = np.rint(grey16_ramp().astype(np.float64) * 255 / 65535)
    assert np.abs(pixels[..., 0] - expected).max() <= 0
    row = pixels[0, :, 0]
    assert row[0] == 0 and row[-1] == 255 and (np.diff(row) >= 0).all()
    assert 120 < row.mean() < 135  # Pillow's convert("RGB") would give ~254 (all clipped to white)


def test_high_depth_tiff_modes(tmp_path):
    ramp = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (4, 1))
    cases = {
        "float01.tif": (Image.fromarray(ramp, "F"), np.rint(ramp * 255)),
        "int16range.tif": (Image.fromarray((ramp * 65535).astype(np.int32), "I"),
                           np.rint((ramp * 65535).astype(np.int64) * 255 / 65535)),
        "int_negative.tif": (Image.fromarray((ramp * 2000 - 1000).astype(np.int32), "I"),
                             np.rint(ramp * 255)),
    }
    for name, (image, expected) in cases.items():
        image.save(tmp_path / name)
        grey = np.asarray(load_image(tmp_path / name).image)[..., 0].astype(np.int64)
        assert np.abs(grey - expected).max() <= 1, name


def test_alpha_is_composited_over_white(corpus, photo):
    root, _ = corpus
    with Image.open(root / "rgba.png") as im:
        rgba = np.asarray(im.convert("RGBA"), np.float64)
    alpha = rgba[..., 3:] / 255
    expected = rgba[..., :3] * alpha + 255 * (1 - alpha)
    got = rgb(load_image(root / "rgba.png"))
    assert np.abs(got - expected).max() <= 1
    assert (got[:, :, :][alpha[..., 0] == 0] == 255).all()  # fully transparent -> white

    with Image.open(root / "palette_transparent.png") as im:
        transparent = np.asarray(im) == 0
        assert transparent.any()
    got = rgb(load_image(root / "palette_transparent.png"))
    assert (got[transparent] == 255).all()
    assert got[~transparent].mean() < 200  # the rest is the photo, not white

    got = rgb(load_image(root / "la.png"))
    grey = np.asarray(photo.convert("L"), np.float64)
    assert np.abs(got[..., 0] - grey).max() <= 1  # LA alpha is opaque: plain grey


def test_cmyk_bilevel_and_first_frames(corpus, photo):
    root, _ = corpus
    assert mean_abs_diff(load_image(root / "cmyk.jpg").image, photo) < 4
    bilevel = np.asarray(load_image(root / "bilevel.tif").image)
    assert set(np.unique(bilevel)) == {0, 255}
    for name in ("animated.gif", "multipage.tif"):
        pixels = np.asarray(load_image(root / name).image).reshape(-1, 3)
        assert (pixels == FIRST_FRAME_RGB).all(), name


def test_twenty_thousand_by_twenty_strip_is_kept_whole(corpus):
    root, _ = corpus
    loaded = load_image(root / "strip_20000x20.png")
    assert (loaded.width, loaded.height) == (20_000, 20) == loaded.image.size
    assert np.array_equal(np.asarray(loaded.image)[0, :512, 0], np.arange(512) % 256)


# --------------------------------------------------------------------------- bombs


def test_bomb_fails_fast_without_allocating_pixels(corpus):
    root, _ = corpus
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    with pytest.raises(ImageLoadError) as info:
        load_image(root / "bomb_50000x50000.png")
    elapsed = time.perf_counter() - start
    peak_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert info.value.reason == "too_large"
    assert elapsed < 0.5
    assert peak_growth_mib < 50  # decoding would need 2,500 MB
    assert (root / "bomb_50000x50000.png").stat().st_size < 20_000


def test_max_pixels_is_checked_from_the_header():
    data = bomb_png(4000, 3000, rows=4)  # 12 MP declared, 4 rows present
    start = time.perf_counter()
    with pytest.raises(ImageLoadError) as info:
        decode_image(data, max_pixels=1_000_000)
    assert time.perf_counter() - start < 0.5
    assert info.value.reason == "too_large"
    assert "4000x3000" in str(info.value) and "max_pixels=1,000,000" in str(info.value)
    # Under the limit it is decoded (Pillow leaves the rows its complete zlib stream lacks black).
    loaded = decode_image(data, max_pixels=12_000_000, min_side=1000)
    assert (loaded.width, loaded.height, loaded.image.size) == (4000, 3000, (1334, 1000))  # reduce(3) rounds up


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # pytest resets Maya's filter per test
def test_pillow_bomb_warning_becomes_too_large_when_warnings_are_errors():
    data = bomb_png(10_000, 9_000, rows=1)  # 90 MP: above Pillow's 89.5 MP warning threshold
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageLoadError) as info:
            decode_image(data)
    assert info.value.reason == "too_large"
    # Our own smaller limit stops the decode from the header.
    with pytest.raises(ImageLoadError) as info:
        decode_image(data, max_pixels=50_000_000)
    assert info.value.reason == "too_large"


# --------------------------------------------------------------------------- sizes


def test_draft_decode_of_a_1024x768_jpeg(tmp_path, photo):
    path = tmp_path / "photo.jpg"
    big = photo.resize((1024, 768), Image.Resampling.BICUBIC)
    big.save(path, quality=90)
    loaded = load_image(path)
    assert (loaded.width, loaded.height, loaded.format) == (1024, 768, "JPEG")
    assert DEFAULT_MIN_SIDE <= min(loaded.image.size) < 768
    assert loaded.image.size == (512, 384)
    with Image.open(path) as im:
        full = im.convert("RGB")
    assert mean_abs_diff(loaded.image, full.resize((512, 384), Image.Resampling.BOX)) < 2


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(width=st.integers(1, 700), height=st.integers(1, 700), min_side=st.integers(1, 300),
       fmt=st.sampled_from(["JPEG", "PNG"]))
def test_decoded_size_never_below_min_side(width, height, min_side, fmt):
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    loaded = decode_image(encode(image, fmt), min_side=min_side)
    assert (loaded.width, loaded.height) == (width, height)
    w, h = loaded.image.size
    assert w <= width and h <= height  # never upscaled
    if min(width, height) >= min_side:
        assert min_side <= min(w, h) < 2 * min_side
    else:
        assert (w, h) == (width, height)
    assert abs(w / h - width / height) <= 1 / min(w, h) * max(1, width / height) + 1e-9


def test_min_side_none_decodes_at_full_size(corpus):
    root, _ = corpus
    loaded = load_image(root / "orientation_6.jpg", min_side=None)
    assert loaded.image.size == PHOTO_SIZE
    loaded = decode_image(encode(Image.new("RGB", (900, 700)), "JPEG"), min_side=None)
    assert loaded.image.size == (900, 700)


# --------------------------------------------------------------------------- identity, files, errors


def test_sha256_and_size_are_those_of_the_file_bytes(corpus):
    root, expected = corpus
    for name in ("orientation_3.jpg", "grey16.png", "animated.gif", "one_pixel.png"):
        data = (root / name).read_bytes()
        loaded = load_image(root / name)
        assert loaded.sha256 == hashlib.sha256(data).hexdigest() == sha256_file(root / name)
        assert loaded.size_bytes == len(data)
        assert read_file(root / name) == data
    assert sha256_file(root / "empty.jpg") == hashlib.sha256(b"").hexdigest()


def test_bytes_like_inputs_and_reduced_images_are_detached(corpus):
    root, _ = corpus
    data = (root / "ok.webp").read_bytes()
    a = decode_image(data)
    b = decode_image(bytearray(data))
    c = decode_image(memoryview(data))
    assert a.sha256 == b.sha256 == c.sha256
    assert a.image.tobytes() == b.image.tobytes() == c.image.tobytes()
    gif = load_image(root / "animated.gif")
    assert getattr(gif.image, "fp", None) is None  # holds no reference to the file bytes


def test_path_errors(tmp_path, corpus):
    root, _ = corpus
    cases = {
        tmp_path / "nope.jpg": "missing",
        root / "one_pixel.png" / "child.jpg": "missing",  # a parent is a file
        tmp_path / ("x" * 300 + ".jpg"): "unreadable",  # name too long
        str(tmp_path / "nul\0.jpg"): "missing",
        root / "dir.jpg": "is_directory",
        root / "loop_a.jpg": "unreadable",
    }
    for path, reason in cases.items():
        for fn in (read_file, sha256_file, load_image):
            with pytest.raises(ImageLoadError) as info:
                fn(path)
            assert info.value.reason == reason, (fn.__name__, path)
    with pytest.raises(TypeError):
        read_file(3.5)  # a caller bug, not a bad file


def test_error_messages_are_one_printable_line(tmp_path):
    name = os.fsdecode(b"bad\xffname\n.jpg")
    with pytest.raises(ImageLoadError) as info:
        load_image(tmp_path / name)
    e = info.value
    assert e.reason == "missing"
    assert os.fsencode(e.path).endswith(b"bad\xffname\n.jpg")
    text = str(e)
    assert "\n" not in text and "\\xff" in text and "\\n" in text
    text.encode("ascii")
    again = pickle.loads(pickle.dumps(e))
    assert (again.reason, again.path, again.detail, str(again)) == (e.reason, e.path, e.detail, str(e))
    with pytest.raises(ImageLoadError) as info:
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 5)
    assert info.value.path is None and str(info.value).startswith(info.value.reason + ": ")


def test_invalid_arguments_are_value_errors():
    data = encode(Image.new("RGB", (8, 8)), "PNG")
    for kw in ({"min_side": 0}, {"min_side": -5}, {"max_pixels": 0}):
        with pytest.raises(ValueError):
            decode_image(data, **kw)


def test_parallel_decoding_matches_sequential(corpus):
    root, expected = corpus
    names = [n for n, r in expected.items() if r is None] * 4 + [n for n, r in expected.items() if r]

    def outcome(name):
        try:
            loaded = load_image(root / name)
        except ImageLoadError as e:
            return e.reason
        return loaded.sha256, loaded.image.size, hashlib.sha256(loaded.image.tobytes()).hexdigest()

    sequential = [outcome(n) for n in names]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(outcome, names))
    assert parallel == sequential


def test_import_stays_cheap():
    code = "import sys, maya.io.images; print(sorted(m for m in ('numpy', 'torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_unsupported_and_not_an_image_messages(tmp_path):
    cases = {
        b"<?xml version='1.0'?>\n<svg xmlns='http://www.w3.org/2000/svg'/>": ("unsupported", "SVG"),
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n": ("unsupported", "PDF"),
        b"8BPS\x00\x01" + bytes(20): ("unsupported", "PSD"),
        b"just words, nothing else\n": ("not_an_image", "text"),
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00": ("truncated", "PNG"),
        b"\xff\xd8\xff\xe0" + bytes(12): ("corrupt", "JPEG"),
    }
    for data, (reason, word) in cases.items():
        with pytest.raises(ImageLoadError) as info:
            decode_image(data, path="x.jpg")
        assert (info.value.reason, word in str(info.value)) == (reason, True), (data[:12], str(info.value))
    with pytest.raises(ImageLoadError) as info:
        decode_image(io.BytesIO(b"").getvalue())
    assert info.value.reason == "empty"
