"""maya.index.turned: the turned-pHash pairs kept between runs give the pairs a search from scratch gives, for a
grown, a shrunk or a changed collection, and a damaged file costs only a search."""

import os
import stat

import numpy as np
import pytest

from maya.dedup.candidates import _turned_pairs
from maya.index.turned import pair_file, turned_pairs


def _variants(rng, n):
    """Variant rows in near-copy clusters, some with their columns turned (pairs only through a turn)."""
    base = rng.integers(0, 2**63, size=(max(1, n // 4), 8), dtype=np.uint64)
    rows = base[rng.integers(0, len(base), n)]
    for bit in range(64):
        rows ^= (rng.random(rows.shape) < 0.04).astype(np.uint64) << np.uint64(bit)
    turn = rng.random(n) < 0.3
    rows[turn] = rows[turn][:, [3, 2, 1, 0, 6, 7, 4, 5]]
    return rows


def _set(a, b):
    return set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))


def _shas(rng, n):
    return [f"{x:064x}" for x in rng.permutation(10**6)[:n]]


@pytest.mark.parametrize("seed", range(6))
def test_kept_pairs_plus_the_new_contents_equal_a_search_from_scratch(tmp_path, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 240))
    v, shas, radius = _variants(rng, n), _shas(rng, n), int(rng.integers(2, 12))
    want = _set(*_turned_pairs(v, radius))
    assert want  # the collection has turned pairs to find
    first = rng.permutation(n)[: n // 2]  # a first run over half, in another order
    a, b = turned_pairs(tmp_path, "alg", [shas[i] for i in first], v[first], radius, _turned_pairs)
    assert _set(a, b) == _set(*_turned_pairs(v[first], radius))

    def no_search(*_):
        raise AssertionError("the kept pairs should have been used")

    a, b = turned_pairs(tmp_path, "alg", shas, v, radius, no_search)  # grown: only the new half is searched
    assert _set(a, b) == want
    mtime = pair_file(tmp_path, "alg", radius).stat().st_mtime_ns
    a, b = turned_pairs(tmp_path, "alg", shas, v, radius, no_search)  # nothing new: the file as it is
    assert _set(a, b) == want and pair_file(tmp_path, "alg", radius).stat().st_mtime_ns == mtime
    part = rng.permutation(n)[: n // 3]  # files removed: the pairs among those left
    a, b = turned_pairs(tmp_path, "alg", [shas[i] for i in part], v[part], radius, no_search)
    assert _set(a, b) == _set(*_turned_pairs(v[part], radius))


def test_another_radius_or_algorithm_has_a_file_of_its_own(tmp_path):
    rng = np.random.default_rng(7)
    v, shas = _variants(rng, 120), _shas(rng, 120)
    turned_pairs(tmp_path, "alg", shas, v, 4, _turned_pairs)
    a, b = turned_pairs(tmp_path, "alg", shas, v, 10, _turned_pairs)
    assert _set(a, b) == _set(*_turned_pairs(v, 10))
    a, b = turned_pairs(tmp_path, "other", shas, v, 10, _turned_pairs)
    assert _set(a, b) == _set(*_turned_pairs(v, 10))
    assert len(list(tmp_path.iterdir())) == 3


@pytest.mark.parametrize("damage", ["truncated", "garbage", "out of range"])
def test_a_damaged_file_is_searched_again_and_replaced(tmp_path, damage):
    rng = np.random.default_rng(3)
    v, shas, radius = _variants(rng, 150), _shas(rng, 150), 8
    want = _set(*_turned_pairs(v, radius))
    turned_pairs(tmp_path, "alg", shas[:100], v[:100], radius, _turned_pairs)
    path = pair_file(tmp_path, "alg", radius)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    else:  # a forged file: pairs that point past its contents
        np.savez(path, version=np.int64(1), algorithm=np.array("alg"), radius=np.int64(radius),
                 sha256=np.array(shas[:100], dtype="S64"), a=np.array([0]), b=np.array([100]))
    a, b = turned_pairs(tmp_path, "alg", shas, v, radius, _turned_pairs)
    assert _set(a, b) == want
    a, b = turned_pairs(tmp_path, "alg", shas, v, radius, lambda *_: (_ for _ in ()).throw(AssertionError))
    assert _set(a, b) == want  # the file was written again, whole


def test_an_index_folder_that_cannot_be_written_costs_a_search_not_the_run(tmp_path):
    rng = np.random.default_rng(5)
    v, shas = _variants(rng, 80), _shas(rng, 80)
    folder = tmp_path / "index"
    folder.write_text("a file where the folder would be")  # fails for root too, unlike a read-only folder
    a, b = turned_pairs(folder, "alg", shas, v, 8, _turned_pairs)
    assert _set(a, b) == _set(*_turned_pairs(v, 8))
    assert folder.read_text() == "a file where the folder would be"


def test_dedup_of_a_grown_folder_groups_its_turned_copies_as_a_fresh_store_does(tmp_path):
    from maya.dedup.options import DedupOptions
    from maya.dedup.pipeline import run_dedup
    from maya.hashing import dihedral
    from PIL import Image

    from maya.sample_photos import sample_photo_paths

    photos = tmp_path / "photos"
    photos.mkdir()
    images = []
    for path in sample_photo_paths()[:12]:  # distinct photos
        with Image.open(path) as im:
            images.append(im.convert("RGB").resize((128, 128 * im.height // im.width)))
    for k, im in enumerate(images[:6]):
        im.save(photos / f"p{k}.png")
        im.transpose(dihedral.TRANSFORMS[1 + k % 7]).save(photos / f"p{k}-turned.png")
    db = tmp_path / "data" / "maya.duckdb"
    opts = DedupOptions(mode="phash")

    def groups(run):
        return sorted(sorted(os.path.basename(m.path) for m in g.members) for g in run.groups)

    first = run_dedup([str(photos)], opts, db_path=db)
    assert len(first.groups) == 6
    assert pair_file(db.parent / "index", dihedral.ALGORITHM, opts.phash_accept).exists()
    for k, im in enumerate(images[6:], start=6):  # the folder grows: new photos and their turned copies
        im.save(photos / f"p{k}.png")
        im.transpose(dihedral.TRANSFORMS[1 + k % 7]).save(photos / f"p{k}-turned.png")
    images[0].transpose(dihedral.TRANSFORMS[5]).save(photos / "p0-turned-again.png")  # a new copy of an old one
    grown = run_dedup([str(photos)], opts, db_path=db)
    fresh = run_dedup([str(photos)], opts, db_path=tmp_path / "fresh" / "maya.duckdb")
    assert grown.counts["files_read"] == 13
    assert groups(grown) == groups(fresh)
    assert len(grown.groups) == 12 and ["p0-turned-again.png", "p0-turned.png", "p0.png"] in groups(grown)
