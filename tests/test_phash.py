"""maya.hashing.phash: bit-for-bit equal to imagehash.phash, on real photos, edits, odd modes and sizes."""

import functools
import io
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from maya.hashing import phash
from maya.hashing.phash import ALGORITHM, from_hex, gray32, hamming, phash_bits, phash_bits_from_gray, to_hex


def _skimage_data_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).resolve().parent


@functools.cache
def _real_images() -> list[tuple[str, Image.Image]]:
    """Every PNG/JPEG/GIF in skimage.data (27: photos, scans, drawings; modes L, RGB, RGBA, P)."""
    out = []
    for path in sorted(_skimage_data_dir().iterdir()):
        if path.suffix.lower() in (".png", ".jpg", ".gif"):
            with Image.open(path) as im:
                im.load()
                out.append((path.name, im.copy()))
    return out


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        im.load()
        return im.copy()


def _edits(name: str, im: Image.Image) -> list[tuple[str, Image.Image]]:
    rgb = im.convert("RGB")
    w, h = rgb.size
    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    return [
        (f"{name}/half", rgb.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.BILINEAR)),
        (f"{name}/odd-size", rgb.resize((333, 217), Image.Resampling.BICUBIC)),
        (f"{name}/jpeg40", _jpeg(rgb, 40)),
        (f"{name}/rotate7", rgb.rotate(7, expand=True, fillcolor=(0, 0, 0))),
        (f"{name}/crop", rgb.crop((w // 10, h // 10, w - w // 7, h - h // 9))),
        (f"{name}/grey", rgb.convert("L")),
        (f"{name}/rgba", rgba),
        (f"{name}/palette", rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)),
        (f"{name}/1x1", rgb.resize((1, 1), Image.Resampling.BOX)),
        (f"{name}/3x2", rgb.resize((3, 2), Image.Resampling.BOX)),
    ]


def _assert_same_as_imagehash(named_images):
    images = [im for _, im in named_images]
    ours = phash_bits(images)
    assert ours.dtype == np.uint64 and ours.shape == (len(images),)
    mismatches = [
        (name, to_hex(h), str(imagehash.phash(im)))
        for (name, im), h in zip(named_images, ours)
        if to_hex(h) != str(imagehash.phash(im))
    ]
    assert mismatches == []


def test_matches_imagehash_on_real_images():
    real = _real_images()
    assert len(real) >= 20
    modes = {im.mode for _, im in real}
    assert {"L", "RGB"} <= modes and len(modes) >= 3  # also RGBA / P among the shipped files
    _assert_same_as_imagehash(real)


@pytest.mark.slow
def test_matches_imagehash_on_edited_photos():
    real = dict(_real_images())
    edited = []
    for name in ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "camera.png",
                 "hubble_deep_field.jpg", "motorcycle_left.png", "page.png"):
        edited += _edits(name, real[name])
    assert len(edited) >= 80
    _assert_same_as_imagehash(edited)


def test_distinct_photos_differ_and_edits_stay_close():
    real = dict(_real_images())
    rgb = real["chelsea.png"].convert("RGB")
    base, small, jpeg, other = phash_bits(
        [rgb, rgb.resize((225, 150), Image.Resampling.BILINEAR), _jpeg(rgb, 40),
         real["coffee.png"]])
    assert hamming(base, small) <= 4
    assert hamming(base, jpeg) <= 4
    assert hamming(base, other) >= 16


@pytest.mark.parametrize("mode,value", [("L", 0), ("L", 1), ("L", 128), ("L", 255),
                                        ("RGB", (30, 200, 90)), ("RGBA", (0, 0, 0, 0)),
                                        ("1", 1), ("I", 200), ("F", 77.0)])
@pytest.mark.parametrize("size", [(1, 1), (40, 31), (640, 480)])
def test_flat_images_tie_break_like_imagehash(mode, value, size):
    # All 63 AC coefficients of a flat image are exactly 0 for scipy but +-1e-13 noise for the
    # matrix product: the near-tie fallback must give imagehash's bits (0 or 0x8000...).
    im = Image.new(mode, size, value)
    assert to_hex(phash_bits([im])[0]) == str(imagehash.phash(im))


def test_the_near_tie_fallback_is_needed_for_flat_images():
    gray = np.full((1, 32, 32), 128.0)
    low = np.matmul(np.matmul(phash._DCT8, gray), phash._DCT8_T).reshape(-1)
    assert np.count_nonzero(low[1:]) > 0  # the matrix product leaves rounding noise...
    assert np.count_nonzero(phash._low_dct_exact(gray).reshape(-1)[1:]) == 0  # ...scipy does not
    assert phash_bits_from_gray(gray)[0] == 1 << 63  # only the DC bit, as imagehash


@pytest.mark.parametrize("pattern", ["stripes", "checker", "mirror", "ramp", "two-level"])
def test_symmetric_patterns_match_imagehash(pattern):
    y, x = np.mgrid[0:96, 0:96]
    arr = {
        "stripes": (x // 3 % 2) * 255,
        "checker": ((x // 12 + y // 12) % 2) * 255,
        "mirror": np.minimum(x, 95 - x) * 5,  # left-right symmetric: odd columns exactly 0
        "ramp": x * 2 + y,
        "two-level": np.where(x < 48, 10, 240),
    }[pattern]
    im = Image.fromarray(arr.astype(np.uint8), mode="L")
    assert to_hex(phash_bits([im])[0]) == str(imagehash.phash(im))


def test_random_images_match_imagehash():
    rng = np.random.default_rng(7)
    images = []
    for _ in range(40):
        h, w = rng.integers(1, 200, size=2)
        channels = rng.choice([1, 3, 4])
        arr = rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
        # smooth a little so low frequencies carry structure, as in photos
        arr = ((arr.astype(np.int32) + np.roll(arr, 1, axis=0) + np.roll(arr, 1, axis=1)) // 3)
        arr = arr.astype(np.uint8)
        images.append(("rand", Image.fromarray(arr[..., 0] if channels == 1 else arr)))
    _assert_same_as_imagehash(images)


def test_batch_equals_one_by_one_and_order_is_kept():
    real = [im for _, im in _real_images()][:12]
    gray = np.stack([gray32(im) for im in real])
    batch = phash_bits_from_gray(gray)
    singles = np.array([phash_bits_from_gray(g[None])[0] for g in gray], dtype=np.uint64)
    np.testing.assert_array_equal(batch, singles)
    np.testing.assert_array_equal(phash_bits_from_gray(gray[::-1]), batch[::-1])


def test_gray32_is_imagehash_preprocessing():
    im = dict(_real_images())["astronaut.png"]
    g = gray32(im)
    assert g.shape == (32, 32) and g.dtype == np.float64
    expected = np.asarray(im.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    np.testing.assert_array_equal(g, expected)


def test_empty_and_bad_shapes():
    assert phash_bits([]).shape == (0,)
    assert phash_bits_from_gray(np.zeros((0, 32, 32))).dtype == np.uint64
    with pytest.raises(ValueError):
        phash_bits_from_gray(np.zeros((32, 32)))
    with pytest.raises(ValueError):
        phash_bits_from_gray(np.zeros((2, 16, 16)))


def test_hamming_counts_bits_and_broadcasts():
    a = np.array([0, 0xFFFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0001], dtype=np.uint64)
    assert hamming(a, np.uint64(0)).tolist() == [0, 64, 2]
    m = hamming(a[:, None], a[None, :])
    assert m.shape == (3, 3) and m.tolist() == [[0, 64, 2], [64, 0, 62], [2, 62, 0]]
    assert int(hamming(1 << 63, 0)) == 1  # Python ints above 2**63 - 1 work too
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2**64, size=200, dtype=np.uint64)
    y = rng.integers(0, 2**64, size=200, dtype=np.uint64)
    expected = [bin(int(p) ^ int(q)).count("1") for p, q in zip(x, y)]
    assert hamming(x, y).tolist() == expected


def test_hex_round_trip_with_imagehash_strings():
    im = dict(_real_images())["coffee.png"]
    s = str(imagehash.phash(im))
    bits = phash_bits([im])[0]
    assert to_hex(bits) == s and from_hex(s) == int(bits)
    assert to_hex(0) == "0" * 16 and to_hex(from_hex("ffffffffffffffff")) == "f" * 16
    # our hamming agrees with imagehash's own distance
    other = dict(_real_images())["chelsea.png"]
    assert int(hamming(bits, phash_bits([other])[0])) == imagehash.phash(im) - imagehash.phash(other)
    for bad in ("1" * 17, "xyz", "-1"):
        with pytest.raises(ValueError):
            from_hex(bad)


def test_algorithm_key():
    # v2: the decode composites transparency over a contrasting background (stored v1 hashes are not reused)
    assert ALGORITHM == "phash64-v2"


def test_the_default_hasher_is_this_phash_behind_the_small_interface():
    import maya.hashing as hashing

    images = [im for _, im in _real_images()]
    assert hashing.DEFAULT.name == ALGORITHM and hashing.DEFAULT.bits == 64
    assert hashing.get(ALGORITHM) is hashing.DEFAULT and ALGORITHM in hashing.names()
    bits = hashing.DEFAULT.compute(images)
    assert bits.dtype == np.uint64 and np.array_equal(bits, phash_bits(images))
    gray = np.stack([hashing.DEFAULT.gray(im) for im in images])
    assert np.array_equal(hashing.DEFAULT.compute_gray(gray), bits)
    assert np.array_equal(hashing.DEFAULT.distance(bits[:, None], bits[None, :]),
                          hamming(bits[:, None], bits[None, :]))
    with pytest.raises(KeyError, match="unknown hash algorithm"):
        hashing.get("dhash64-v0")
    with pytest.raises(ValueError, match="already registered"):
        hashing.register(hashing.Hasher(name=ALGORITHM, bits=64, compute=phash_bits))
