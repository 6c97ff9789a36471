"""maya.hashing.dihedral: the 8 flip/turn variants of pHash equal imagehash on the actually turned pixels."""

import imagehash
import numpy as np
import pytest
from PIL import Image

from maya.hashing import dihedral, hamming, phash
from tests.test_phash import _real_images


def _imagehash(im) -> int:
    return int(str(imagehash.phash(im)), 16)


def test_variant_zero_is_plain_phash_bit_for_bit():
    images = [im for _, im in _real_images()]
    variants = dihedral.dihedral_bits(images)
    assert variants.shape == (len(images), 8) and variants.dtype == np.uint64
    assert [int(h) for h in variants[:, 0]] == [_imagehash(im) for im in images]


def test_every_variant_equals_imagehash_of_the_turned_32px_grey_image():
    # pHash's own input (32x32 grey): its resize is the identity, so flips commute with it exactly
    mismatches = []
    for name, im in _real_images():
        small = Image.fromarray(phash.gray32(im).astype(np.uint8))
        row = dihedral.dihedral_bits([small])[0]
        for k, t in enumerate(dihedral.TRANSFORMS):
            turned = small if t is None else small.transpose(t)
            if int(row[k]) != _imagehash(turned):
                mismatches.append((name, dihedral.VARIANTS[k]))
    assert mismatches == []


def test_mirrors_and_flips_of_full_size_photos_equal_imagehash_and_quarter_turns_are_within_4_bits():
    # Pillow resizes in two passes (horizontal first, rounding to 8 bits in between): a quarter-turned
    # photo swaps the passes, so its 32x32 grey image differs by a few levels and a bit near the median
    # can flip. Mirrors keep the pass order and come out exact.
    worst = {}
    for name, im in _real_images():
        row = dihedral.dihedral_bits([im])[0]
        for k, t in enumerate(dihedral.TRANSFORMS[1:], start=1):
            diff = int(hamming(row[k], _imagehash(im.transpose(t))))
            worst[dihedral.VARIANTS[k]] = max(worst.get(dihedral.VARIANTS[k], 0), diff)
    assert worst["mirror"] == worst["flip"] == worst["rotate180"] == 0
    assert max(worst.values()) <= 4


def test_a_mirrored_or_turned_copy_is_at_distance_zero_and_names_its_variant():
    im = dict(_real_images())["chelsea.png"].convert("RGB")
    copies = [im.transpose(t) for t in dihedral.TRANSFORMS[1:4]]  # exact for flips
    v = dihedral.dihedral_bits([im, *copies])
    d, k = dihedral.distance(np.repeat(v[:1], 3, axis=0), v[1:])
    assert d.tolist() == [0, 0, 0]
    assert [dihedral.VARIANTS[i] for i in k] == ["mirror", "flip", "rotate180"]
    plain = hamming(v[0, 0], v[1:, 0])
    assert plain.min() >= 16  # plain pHash misses them


def test_distinct_photos_stay_far_over_all_variants():
    images = [im for _, im in _real_images()]
    v = dihedral.dihedral_bits(images)
    i, j = np.triu_indices(len(images), 1)
    d, _ = dihedral.distance(v[i], v[j])
    assert np.percentile(d, 5) >= 12


def _brute(v, radius):
    n = len(v)
    out = []
    for i in range(n):
        for j in range(i + 1, n):
            d, k = dihedral.distance(v[i:i + 1], v[j:j + 1])
            if d[0] <= radius:
                out.append((i, j, int(d[0]), int(k[0])))
    return out


def _turned_collection(seed: int) -> np.ndarray:
    """Variant rows of the real images, a turned copy of every third one and exact copies of the first three."""
    rng = np.random.default_rng(seed)
    images = [im for _, im in _real_images()]
    turned = [images[i].transpose(dihedral.TRANSFORMS[int(rng.integers(1, 8))]) for i in range(0, 27, 3)]
    v = dihedral.dihedral_bits(images + turned)
    return np.concatenate([v, v[:3]])


@pytest.mark.parametrize("radius", [0, 6, 14])
def test_radius_search_with_all_variants_equals_brute_force(radius):
    v = _turned_collection(radius)
    i, j, d, k = dihedral.pairs_within(v, radius)
    assert list(zip(i.tolist(), j.tolist(), d.tolist(), k.tolist())) == _brute(v, radius)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        dihedral.pairs_within(np.zeros((3, 4), np.uint64), 4)
    with pytest.raises(ValueError):
        dihedral.dihedral_bits_from_gray(np.zeros((1, 16, 16)))
    assert dihedral.dihedral_bits([]).shape == (0, 8)


@pytest.mark.parametrize("value", [0, 128, 255])
def test_flat_images_tie_break_like_imagehash_in_every_variant(value):
    im = Image.new("L", (40, 31), value)
    row = dihedral.dihedral_bits([im])[0]
    assert [int(h) for h in row] == [_imagehash(im.transpose(t)) if t else _imagehash(im)
                                     for t in dihedral.TRANSFORMS]


@pytest.mark.parametrize("radius", [0, 6, 14])
def test_pairs_between_two_sets_equal_the_cross_pairs_of_the_search_over_both(radius):
    v = _turned_collection(radius)
    split = len(v) // 3
    want = [(i, j - split, d, k) for i, j, d, k in _brute(v, radius) if i < split <= j]
    i, j, d, k = dihedral.pairs_between(v[:split], v[split:], radius)
    assert list(zip(i.tolist(), j.tolist(), d.tolist(), k.tolist())) == want
    assert all(x.size == 0 for x in dihedral.pairs_between(v[:0], v, radius))
