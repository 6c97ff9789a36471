"""Transparent drawings keep their shape, and images too uniform for pHash are not joined by it (issue 13, item 4).

Real PNG files made with PIL: white strokes and shapes on a transparent canvas, their exact copies, and
near-blank images whose only differences pHash cannot see.
"""

import shutil
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageDraw

from maya.dedup.options import DedupOptions
from maya.dedup.pipeline import find_duplicates, run_dedup
from maya.hashing import DEFAULT, phash, structure
from maya.io.images import load_image
from maya.sample_photos import sample_photo_paths


def _drawing(k: int) -> Image.Image:
    """The k-th of distinct white-on-transparent drawings (seeded strokes, ellipses and polygons)."""
    rng = np.random.default_rng(1000 + k)
    im = Image.new("RGBA", (320, 240), (0, 0, 0, 0))
    draw = ImageDraw.Draw(im)
    for _ in range(3 + k % 3):
        pts = [tuple(int(v) for v in rng.integers(10, 230, 2) * (1.3, 1)) for _ in range(4)]
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.line(pts, fill=(255, 255, 255, 255), width=int(rng.integers(4, 12)))
        elif kind == 1:
            x0, y0 = pts[0]
            draw.ellipse((x0 - 40, y0 - 30, x0 + 40, y0 + 30), outline=(255, 255, 255, 255), width=6)
        else:
            draw.polygon(pts[:3], fill=(250, 250, 250, 255))
    return im


@pytest.fixture(scope="module")
def drawings(tmp_path_factory):
    """``(root, originals, copies)``: ten drawings as PNG and one exact copy of each (in copies/)."""
    root = tmp_path_factory.mktemp("drawings")
    (root / "copies").mkdir()
    originals, copies = [], []
    for k in range(10):
        path = root / f"drawing_{k}.png"
        _drawing(k).save(path)
        copy = root / "copies" / f"drawing_{k}_copy.png"
        shutil.copyfile(path, copy)
        originals.append(str(path))
        copies.append(str(copy))
    return root, originals, copies


def _groups(report) -> list[set[str]]:
    return [{m["path"] for m in g["members"]} for g in report["groups"]]


def test_a_sparse_drawing_gets_no_inner_view_its_strokes_are_not_a_picture_in_a_frame(drawings):
    from maya import views

    _, originals, _ = drawings
    assert [views.inner_box(load_image(p).image) for p in originals] == [None] * 10


def _assert_each_drawing_grouped_with_its_copy_only(report, originals, copies):
    groups = _groups(report)
    assert sorted(map(sorted, groups)) == sorted(sorted({o, c}) for o, c in zip(originals, copies))


def test_a_white_on_transparent_drawing_is_decoded_white_on_black_not_blank(drawings):
    _, originals, _ = drawings
    pixels = np.asarray(load_image(originals[0]).image)
    assert pixels.min() == 0 and pixels.max() >= 250  # the shape survives: not all white
    with Image.open(originals[0]) as im:
        alpha = np.asarray(im.getchannel("A"))
    assert (pixels[alpha == 0] == 0).all()  # transparent -> black, the contrasting background
    # a dark drawing on transparency keeps the white background of before
    dark = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(dark).line([(5, 5), (60, 50)], fill=(20, 20, 20, 255), width=5)
    dark.save(Path(originals[0]).parent.parent / "dark.png")
    got = np.asarray(load_image(Path(originals[0]).parent.parent / "dark.png").image)
    assert (got[np.asarray(dark.getchannel("A")) == 0] == 255).all()


def test_the_drawings_have_distinct_hashes_with_structure(drawings):
    _, originals, _ = drawings
    images = [load_image(p).image for p in originals]
    bits = phash.phash_bits(images)
    assert len(set(bits.tolist())) == 10 and 0x8000000000000000 not in set(bits.tolist())
    std = structure.gray_std(np.stack([phash.gray32(im) for im in images]))
    assert not structure.is_low_structure(std).any()


def test_in_phash_mode_distinct_drawings_are_never_grouped_and_each_copy_is(drawings):
    root, originals, copies = drawings
    report = find_duplicates(root, mode="phash")
    _assert_each_drawing_grouped_with_its_copy_only(report, originals, copies)


@pytest.mark.slow
# With views, two sparse drawings' inner views (their strokes' bounding boxes) were d 16 apart at view similarity
# >= 0.8 (whole images 0.68), and the band clause joined them. Two things keep them apart now: the detector's edge
# test (maya.views inner-v2: strokes fade out of the canvas, no view) and efficientnet-lite0's clip_verify of 0.90
# chosen on the collection benchmark (issue 13).
@pytest.mark.parametrize("views", [False, True])
def test_in_the_default_mode_with_efficientnet_distinct_drawings_are_never_grouped_and_each_copy_is(drawings, views):
    root, originals, copies = drawings
    report = run_dedup(root, DedupOptions(views=views), model="efficientnet-lite0").report
    _assert_each_drawing_grouped_with_its_copy_only(report, originals, copies)


def test_in_the_default_mode_the_phash_side_never_groups_distinct_drawings(drawings, tiny_clip_dir):
    # a random tiny CLIP cannot tell drawings apart, so its own clauses are switched off here: what is
    # left is the default mode's pHash side (accept and band), which must not join them either
    root, originals, copies = drawings
    report = find_duplicates(root, model=str(tiny_clip_dir), clip_verify=1.0, clip_strict=1.0)
    _assert_each_drawing_grouped_with_its_copy_only(report, originals, copies)


# ---------------------------------------------------------------------------------------------- low structure


@pytest.fixture(scope="module")
def faint(tmp_path_factory):
    """Ten distinct near-uniform pictures: five solid colour swatches and five near-invisible white strokes
    (alpha 8) on transparency, each saved twice with different PNG settings (other bytes, the same
    pixels): ``(root, firsts, re-encoded)``."""
    root = tmp_path_factory.mktemp("faint")
    firsts, again = [], []
    colours = [(200, 30, 30), (30, 30, 200), (40, 160, 60), (230, 220, 40), (90, 90, 90)]
    for k in range(10):
        if k < 5:
            im = Image.new("RGB", (300, 200), colours[k])
        else:
            im = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
            ImageDraw.Draw(im).line([(20 + 40 * k, 10), (280 - 30 * k, 290)], fill=(255, 255, 255, 8), width=9)
        a, b = root / f"faint_{k}.png", root / f"faint_{k}_resaved.png"
        im.save(a, compress_level=9)
        im.save(b, compress_level=1)
        assert a.read_bytes() != b.read_bytes()
        firsts.append(str(a))
        again.append(str(b))
    return root, firsts, again


def test_near_uniform_pictures_are_low_structure_and_have_hashes_that_would_join_them(faint):
    from maya.dedup.options import PHASH_ACCEPT
    from maya.hashing import hamming

    _, firsts, _ = faint
    images = [load_image(p).image for p in firsts]
    std = structure.gray_std(np.stack([phash.gray32(im) for im in images]))
    assert structure.is_low_structure(std).all()
    bits = phash.phash_bits(images)
    d = hamming(bits[:, None], bits[None, :])[np.triu_indices(10, 1)]
    assert (d <= PHASH_ACCEPT).sum() >= 10  # pHash alone would join distinct pictures
    assert len({structure.pixel_digest(im) for im in images}) == 10


def test_without_a_model_low_structure_images_are_grouped_only_when_pixel_identical(faint, tmp_path):
    root, firsts, again = faint
    run = run_dedup(root, DedupOptions(mode="phash"), db_path=tmp_path / "maya.duckdb")
    groups = [{m["path"] for m in g["members"]} for g in run.report["groups"]]
    assert sorted(map(sorted, groups)) == sorted(sorted({a, b}) for a, b in zip(firsts, again))
    assert run.report["groups"][0]["members"][1]["clause"] == "phash"



def test_the_pixel_digest_is_stored_for_images_near_the_bound_and_not_for_photos(faint, tmp_path):
    from maya import store

    root, firsts, _ = faint
    photo = sample_photo_paths()[0]
    (tmp_path / "in").mkdir()
    for k, p in enumerate(firsts[:3] + [str(photo)]):
        (tmp_path / "in" / f"{k}{Path(p).suffix}").write_bytes(Path(p).read_bytes())
    db = tmp_path / "maya.duckdb"
    run_dedup(tmp_path / "in", DedupOptions(mode="phash"), db_path=db)
    con = store.connect(db)
    try:
        rows = con.execute("SELECT gray_std, pixels FROM hash_structure WHERE algorithm = ? ORDER BY gray_std",
                           [DEFAULT.name]).fetchall()
    finally:
        con.close()
    assert [std < structure.DIGEST_STD for std, _ in rows] == [True, True, True, False]
    assert [px is not None for _, px in rows] == [True, True, True, False]
    faint_image = load_image(firsts[0]).image
    assert rows[0][1] in {structure.pixel_digest(load_image(p).image) for p in firsts[:3]}
    assert structure.wants_digest(phash.gray32(faint_image))

def test_with_a_model_a_low_structure_pair_is_the_models_to_decide(faint, tiny_clip_dir):
    root, firsts, again = faint
    # the model's clause switched off: only pixel-identical pairs can match, never a pHash accept
    report = find_duplicates(root, model=str(tiny_clip_dir), clip_verify=1.0, clip_strict=1.0)
    assert sorted(map(sorted, _groups(report))) == sorted(sorted({a, b}) for a, b in zip(firsts, again))
    # the model's clause on at a similarity every pair reaches: the model, not pHash, joins them
    report = find_duplicates(root, model=str(tiny_clip_dir), clip_verify=-1.0, clip_strict=-1.0)
    assert {m["clause"] for g in report["groups"] for m in g["members"]} <= {"keep", "clip", "phash"}
    assert len(_groups(report)) == 1


# ---------------------------------------------------------------------------------------------- cache keys


def test_an_opaque_photo_hashes_as_imagehash_does_and_an_opaque_alpha_channel_changes_nothing(tmp_path):
    photo = sample_photo_paths()[0]
    loaded = load_image(photo)
    assert phash.to_hex(DEFAULT.compute([loaded.image])[0]) == str(imagehash.phash(loaded.image))
    with Image.open(photo) as im:
        rgba = im.convert("RGBA")
    rgba.save(tmp_path / "opaque.png")
    rgb_version = rgba.convert("RGB")
    rgb_version.save(tmp_path / "opaque_rgb.png")
    assert np.array_equal(np.asarray(load_image(tmp_path / "opaque.png").image),
                          np.asarray(load_image(tmp_path / "opaque_rgb.png").image))


def test_a_hash_stored_by_the_old_decode_is_not_reused(drawings, tmp_path):
    from maya import store

    root, originals, _ = drawings
    db = tmp_path / "maya.duckdb"
    first = run_dedup(root, DedupOptions(mode="phash"), db_path=db)
    con = store.connect(db)
    try:
        rows = con.execute("SELECT DISTINCT algorithm FROM hashes WHERE algorithm NOT LIKE '%@%'").fetchall()
        assert rows == [(DEFAULT.name,)] and DEFAULT.name != "phash64-v1"  # (views' hashes carry an @view id)
        n = con.execute("SELECT count(*) FROM hash_structure WHERE algorithm = ?", [DEFAULT.name]).fetchone()[0]
        assert n == 10  # one per distinct content
    finally:
        con.close()
    assert first.counts["hashes_computed"] == 10
