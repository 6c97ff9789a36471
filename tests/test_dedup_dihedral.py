"""maya dedup with the dihedral pHash: mirrored and quarter-turned copies are found, and the store says how."""

import duckdb
import numpy as np
import pytest
from PIL import Image

from maya.dedup.options import DedupOptions
from maya.dedup.pipeline import run_dedup
from maya.hashing import dihedral, hamming, phash
from tests.test_phash import _real_images

TURNS = {"mirror": Image.Transpose.FLIP_LEFT_RIGHT, "rotate90": Image.Transpose.ROTATE_90,
         "rotate270": Image.Transpose.ROTATE_270, "rotate180": Image.Transpose.ROTATE_180}


def _folder(tmp_path):
    real = dict(_real_images())
    originals = ["chelsea.png", "coffee.png", "astronaut.png"]
    for name in originals:
        im = real[name].convert("RGB")
        im.save(tmp_path / name)
        for turn, t in TURNS.items():
            im.transpose(t).save(tmp_path / f"{turn}-{name}")
    for name in ("rocket.jpg", "camera.png", "coins.png", "moon.png"):  # unrelated photos
        real[name].convert("RGB").save(tmp_path / name)
    return originals


@pytest.mark.slow
def test_phash_mode_groups_mirrored_and_turned_copies_with_their_original(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    originals = _folder(root)
    run = run_dedup([root], DedupOptions(mode="phash"), db_path=tmp_path / "maya.duckdb")
    groups = sorted(sorted(_name(m.path) for m in g.members) for g in run.groups)
    want = sorted(sorted([name] + [f"{turn}-{name}" for turn in TURNS]) for name in originals)
    assert groups == want
    con = duckdb.connect(str(tmp_path / "maya.duckdb"), read_only=True)
    try:
        variants = {v for (v,) in con.execute("SELECT DISTINCT phash_variant FROM dedup_pairs").fetchall()}
        stored = con.execute("SELECT count(*), count(DISTINCT sha256) FROM hash_variants").fetchone()
    finally:
        con.close()
    assert {"mirror", "rotate180"} <= variants and variants & {"rotate90", "rotate270", "transpose", "transverse"}
    assert stored == (8 * 19, 19)  # 8 variants of each of the 19 contents


def test_plain_phash_alone_would_miss_them():
    im = dict(_real_images())["coffee.png"].convert("RGB")
    turned = [im.transpose(t) for t in TURNS.values()]
    plain = phash.phash_bits([im, *turned])
    assert hamming(plain[0], plain[1:]).min() > 16
    v = dihedral.dihedral_bits([im, *turned])
    d, _ = dihedral.distance(np.repeat(v[:1], len(turned), axis=0), v[1:])
    assert d.max() <= 4


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


@pytest.mark.slow
def test_phash_mode_groups_a_screenshot_and_a_meme_with_their_original_through_the_inner_view(tmp_path):
    from PIL import ImageDraw

    root = tmp_path / "photos"
    root.mkdir()
    real = dict(_real_images())
    cat = real["chelsea.png"].convert("RGB")
    cat.save(root / "cat.png")
    window = Image.new("RGB", (cat.width + 80, cat.height + 110), (242, 242, 242))
    ImageDraw.Draw(window).rectangle((0, 0, window.width, 30), fill=(60, 60, 64))
    window.paste(cat, (40, 70))
    window.save(root / "screenshot.png")
    meme = Image.new("RGB", (cat.width, cat.height + 120), (0, 0, 0))
    meme.paste(cat, (0, 60))
    ImageDraw.Draw(meme).text((20, 20), "WHEN THE CAT", fill=(255, 255, 255))
    meme.save(root / "meme.png")
    for name in ("rocket.jpg", "camera.png", "coffee.png"):
        real[name].convert("RGB").save(root / name.replace(".jpg", ".png"))
    plain = run_dedup([root], DedupOptions(mode="phash", views=False), db_path=tmp_path / "plain.duckdb")
    with_views = run_dedup([root], DedupOptions(mode="phash"), db_path=tmp_path / "maya.duckdb")
    assert all("cat.png" not in {_name(m.path) for m in g.members} for g in plain.groups)
    assert [sorted(_name(m.path) for m in g.members) for g in with_views.groups] == [
        ["cat.png", "meme.png", "screenshot.png"]]
    con = duckdb.connect(str(tmp_path / "maya.duckdb"), read_only=True)
    try:
        found, = con.execute("SELECT views_found FROM runs WHERE flow = 'dedup'").fetchone()
    finally:
        con.close()
    assert found >= 2
