"""Pair building and import (maya.pairs.build) and the contact sheet (maya.report.pairs_show), on real photos."""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maya import store
from maya.io import images as imageio
from maya.hashing import phash
from maya.pairs import transforms
from maya.pairs.build import (
    KIND_HARD_EMBEDDING,
    KIND_HARD_PHASH,
    KIND_RANDOM,
    KIND_SEMANTIC,
    NEAR_DUPLICATE_BITS,
    SURVEY_MIN_SIDE,
    PairsError,
    build_pairs,
    import_pairs,
)
from maya.report.pairs_show import choose_rows, cmd_pairs_show, sheet_rows, show_dataset
from tests.conftest import photo

# Small enough to be quick (8 photos of 256 px), large enough that every kind is dealt out once:
# 8 originals x 4 single edits = 32 >= 27 kinds.
BUILD = {"positives_per_original": 4, "chains_per_original": 2}


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="module")
def built(photo_dir, build_dir):
    return build_pairs(photo_dir, build_dir / "images-a", seed=0, workers=2, **BUILD)


def _flow_phash(path) -> int:
    """pHash of a file as the evaluate flow computes it (decoded at its reduced scale)."""
    return int(phash.phash_bits([imageio.load_image(path, min_side=SURVEY_MIN_SIDE).image])[0])


def _paths(ps) -> dict[str, str]:
    return {f.sha256: f.path for f in ps.files if f.status == "ok"}


def _family(ps) -> dict[str, str]:
    """sha256 of every image -> sha256 of the original it is (or was made from)."""
    fam = {}
    for p in ps.pairs:
        if p.label and p.kind != KIND_SEMANTIC:
            fam[p.a] = p.a
            fam[p.b] = p.a
    return fam


def _rows(ps) -> list[tuple]:
    return [(p.pair_id, p.a, p.b, p.label, p.kind, json.dumps(p.params, sort_keys=True), p.split, p.original)
            for p in ps.pairs]


# ---------------------------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_rows_and_bytes_whatever_the_threads(photo_dir, build_dir, built):
    again = build_pairs(photo_dir, build_dir / "images-b", seed=0, workers=1, **BUILD)
    assert _rows(again) == _rows(built)
    derived_a = sorted(f for f in (build_dir / "images-a").rglob("*") if f.is_file())
    derived_b = sorted(f for f in (build_dir / "images-b").rglob("*") if f.is_file())
    assert [f.name for f in derived_a] == [f.name for f in derived_b]
    assert len(derived_a) == 8 * (4 + 2)
    for fa, fb in zip(derived_a, derived_b):
        assert fa.read_bytes() == fb.read_bytes()
        assert hashlib.sha256(fa.read_bytes()).hexdigest() == fa.stem  # content-addressed


def test_another_seed_gives_other_pairs(photo_dir, build_dir, built):
    other = build_pairs(photo_dir, build_dir / "images-c", seed=1, **BUILD)
    derived = {p.b for p in built.pairs if p.label}
    derived_other = {p.b for p in other.pairs if p.label}
    assert len(derived & derived_other) <= 1  # at most a coincidence, e.g. one lossless re-save
    assert [p.kind for p in other.pairs] != [p.kind for p in built.pairs]
    split = {p.original: p.split for p in built.pairs}
    split_other = {p.original: p.split for p in other.pairs}
    assert split != split_other  # seed 1 deals the originals into other splits


# ---------------------------------------------------------------------------------------------- kinds


def test_every_kind_and_chains_at_every_level(built):
    assert len(transforms.KINDS) >= 20
    kinds = built.kinds()
    assert set(transforms.KINDS) <= set(kinds)
    counts = [kinds[k] for k in transforms.KINDS]
    assert max(counts) - min(counts) <= 1  # dealt out evenly
    chains = [p for p in built.pairs if p.kind.startswith("chain:")]
    assert len(chains) == 8 * 2
    assert {p.params["level"] for p in chains} == set(transforms.LEVELS)
    for p in chains:
        steps = p.params["steps"]
        assert 2 <= len(steps) <= 3
        assert p.kind == "chain:" + "+".join(s["kind"] for s in steps)


def test_every_row_carries_kind_and_params(built):
    for p in built.pairs:
        assert p.kind and isinstance(p.params, dict) and p.params
        json.dumps(p.params)  # plain JSON
        if p.label:
            assert p.params["level"] in transforms.LEVELS
        else:
            assert p.kind in (KIND_HARD_PHASH, KIND_RANDOM)
            assert p.params["by"] in ("phash", "random")
            assert 0 <= p.params["distance"] <= 64
    light_mirrors = [p for p in built.pairs if p.kind in ("hflip", "rotate_90") and p.params["level"] == "light"]
    assert light_mirrors == []  # a mirror is never a "light" copy


def test_ratio_of_negatives_to_positives(photo_dir, tmp_path):
    ps = build_pairs(photo_dir, tmp_path / "images", seed=3, positives_per_original=2, chains_per_original=0,
                     negatives_per_positive=1.5, hard_negative_fraction=0.25)
    n_pos = sum(p.label for p in ps.pairs)
    n_neg = len(ps.pairs) - n_pos
    assert n_pos == 16 and n_neg == 24
    kinds = ps.kinds()
    assert kinds[KIND_HARD_PHASH] == 6 and kinds[KIND_RANDOM] == 18
    assert len({(min(p.a, p.b), max(p.a, p.b)) for p in ps.pairs}) == len(ps.pairs)  # no pair twice


# ---------------------------------------------------------------------------------------------- negatives


def test_hard_negatives_are_harder_than_random_ones(built):
    # Distances recomputed here from the files, as the evaluate flow will compute them.
    paths = _paths(built)
    bits = {sha: _flow_phash(path) for sha, path in paths.items()}
    dist = defaultdict(list)
    for p in built.pairs:
        if not p.label:
            d = int(phash.hamming(bits[p.a], bits[p.b]))
            assert d == p.params["distance"]
            dist[p.kind].append(d)
    assert len(dist[KIND_HARD_PHASH]) >= 20 and len(dist[KIND_RANDOM]) >= 20
    hard, rand = statistics.median(dist[KIND_HARD_PHASH]), statistics.median(dist[KIND_RANDOM])
    assert hard <= rand - 4, (hard, rand)
    assert built.hashes == {sha: bits[sha] for sha in built.hashes}  # what a build reports is exact


def test_negatives_never_mix_originals_of_a_split_or_an_original_with_itself(built):
    fam = _family(built)
    split_of_original = {}
    for p in built.pairs:
        assert p.split in ("val", "test")
        for sha in (p.a, p.b):
            orig = fam[sha]
            assert split_of_original.setdefault(orig, p.split) == p.split  # no original in both splits
        if not p.label:
            assert fam[p.a] != fam[p.b]
    assert set(split_of_original.values()) == {"val", "test"}
    assert len(split_of_original) == 8


@pytest.mark.slow  # imports transformers for the tiny CLIP (3-9 s here)
def test_hard_negatives_by_embedding_are_each_originals_nearest(photo_dir, tmp_path, tiny_clip_dir):
    from maya.features import ModelSpec, get_embedder

    # A model name, as a cached Prefect task would pass it; loaded once per process.
    ps = build_pairs(photo_dir, tmp_path / "images", seed=0, positives_per_original=1, chains_per_original=0,
                     negatives_per_positive=1.0, hard_negative_fraction=1.0, embedder=str(tiny_clip_dir))
    embedder = get_embedder(ModelSpec(str(tiny_clip_dir)))
    kinds = ps.kinds()
    assert kinds[KIND_HARD_EMBEDDING] == 4 and kinds[KIND_HARD_PHASH] == 4
    originals = [p.a for p in ps.pairs if p.label]
    paths = _paths(ps)
    vectors = embedder.embed_images([imageio.load_image(paths[s]).image for s in originals])
    sim = vectors @ vectors.T
    index = {s: k for k, s in enumerate(originals)}
    fam = _family(ps)
    split = {p.a: p.split for p in ps.pairs if p.label}
    for p in ps.pairs:
        if p.kind != KIND_HARD_EMBEDDING:
            continue
        assert p.params["model"] == embedder.model_id
        i, j = index[fam[p.a]], index[fam[p.b]]
        assert p.params["originals_similarity"] == pytest.approx(sim[i, j], abs=1e-4)
        if p.params["rank"] == 1:  # j is i's most similar other original in its split
            same = [index[s] for s in originals if split[s] == split[originals[i]] and index[s] != i]
            assert sim[i, j] == pytest.approx(max(sim[i, k] for k in same), abs=1e-6)


def test_near_duplicate_and_identical_originals_are_never_negatives(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins"):
        photo(name, 200).save(src / f"{name}.png")
    photo("astronaut", 200).save(src / "astronaut-again.jpg", quality=95)  # same picture, re-encoded
    shutil.copyfile(src / "coffee.png", src / "zz-coffee-copy.png")  # same bytes
    ps = build_pairs(src, tmp_path / "images", seed=0, positives_per_original=2, chains_per_original=0,
                     negatives_per_positive=3.0)
    assert any(e.startswith("duplicate:") and "zz-coffee-copy.png" in e for e in ps.errors)
    near = [e for e in ps.errors if e.startswith("near-duplicate originals")]
    assert len(near) == 1 and "astronaut-again.jpg" in near[0] and "astronaut.png" in near[0]
    assert sum(p.label for p in ps.pairs) == 7 * 2  # the byte copy is used once
    paths = _paths(ps)
    fam = _family(ps)
    astro = {fam[s] for s, path in paths.items() if Path(path).name.startswith("astronaut") and s in fam}
    assert len(astro) == 2
    assert int(phash.hamming(*[_flow_phash(paths[s]) for s in astro])) <= NEAR_DUPLICATE_BITS
    for p in ps.pairs:
        if not p.label:
            assert {fam[p.a], fam[p.b]} != astro


# ---------------------------------------------------------------------------------------------- semantic groups


@pytest.fixture(scope="module")
def grouped_source(tmp_path_factory) -> Path:
    """Sub-folders as groups: two shots of a motorcycle (scikit-image's stereo pair), a group of five,
    a group of one, and loose photos at the top."""
    import skimage.data

    src = tmp_path_factory.mktemp("grouped")
    (src / "motorcycle").mkdir()
    data = Path(skimage.data.__file__).resolve().parent
    for side in ("left", "right"):
        with Image.open(data / f"motorcycle_{side}.png") as im:
            im.convert("RGB").resize((250, 169)).save(src / "motorcycle" / f"{side}.png")
    (src / "five").mkdir()
    for name in ("moon", "page", "brick", "grass", "gravel"):
        photo(name, 160).save(src / "five" / f"{name}.png")
    (src / "alone").mkdir()
    photo("chelsea", 160).save(src / "alone" / "chelsea.jpg")
    for name in ("astronaut", "coffee", "rocket", "camera", "coins", "hubble_deep_field"):
        photo(name, 160).save(src / f"{name}.jpg")
    return src


def test_subfolders_as_groups_give_semantic_positives(grouped_source, tmp_path):
    ps = build_pairs(grouped_source, tmp_path / "images", seed=0, positives_per_original=1, chains_per_original=0,
                     groups="subfolders", semantic_pairs_per_original=2, negatives_per_positive=4.0)
    paths = _paths(ps)
    folder = {sha: Path(path).parent.name for sha, path in paths.items()}
    semantic = [p for p in ps.pairs if p.kind == KIND_SEMANTIC]
    by_group = defaultdict(list)
    for p in semantic:
        assert p.label and folder[p.a] == folder[p.b] == p.params["group"]
        by_group[p.params["group"]].append(p)
    assert sorted(by_group) == ["five", "motorcycle"]
    assert {Path(paths[by_group["motorcycle"][0].a]).name, Path(paths[by_group["motorcycle"][0].b]).name} == {
        "left.png", "right.png"}
    # five members, 2 partners each: 5 of the 10 possible pairs, every member in exactly two
    degree = defaultdict(int)
    for p in by_group["five"]:
        degree[p.a] += 1
        degree[p.b] += 1
    assert len(by_group["five"]) == 5 and sorted(degree.values()) == [2] * 5
    # a group shares one split and is never a negative
    fam = _family(ps)
    group_of = {o: folder[o] for o in set(fam.values()) if folder[o] in ("five", "motorcycle")}
    assert len(group_of) == 7
    for g in ("five", "motorcycle"):
        assert len({p.split for p in ps.pairs if group_of.get(fam[p.a]) == g}) == 1
    for p in ps.pairs:
        if not p.label:
            ga, gb = group_of.get(fam[p.a]), group_of.get(fam[p.b])
            assert ga is None or ga != gb


def test_groups_from_a_csv_with_a_bad_row_reported(grouped_source, tmp_path):
    groups_csv = tmp_path / "meta" / "groups.csv"
    groups_csv.parent.mkdir()
    with groups_csv.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "group"])
        w.writerow([str(grouped_source / "coffee.jpg"), "drinks-and-rockets"])  # absolute
        w.writerow([os.path.relpath(grouped_source / "rocket.jpg", groups_csv.parent), "drinks-and-rockets"])
        w.writerow(["nowhere.jpg", "x"])  # line 4: not an image under the source
    ps = build_pairs(grouped_source, tmp_path / "images", seed=0, positives_per_original=1, chains_per_original=0,
                     groups=groups_csv)
    assert any("groups.csv:4" in e and "nowhere.jpg" in e for e in ps.errors)
    semantic = [p for p in ps.pairs if p.kind == KIND_SEMANTIC]
    paths = _paths(ps)
    assert [sorted(Path(paths[s]).name for s in (p.a, p.b)) for p in semantic] == [["coffee.jpg", "rocket.jpg"]]


# ---------------------------------------------------------------------------------------------- input problems


def test_unusable_inputs_are_clear_errors(tmp_path, photo_dir):
    with pytest.raises(PairsError, match="no such folder"):
        build_pairs(tmp_path / "nope", tmp_path / "images")
    (tmp_path / "one").mkdir()
    photo("coffee", 64).save(tmp_path / "one" / "coffee.png")
    (tmp_path / "one" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(PairsError, match="at least 2 readable images"):
        build_pairs(tmp_path / "one", tmp_path / "images")
    with pytest.raises(PairsError, match="hard negative fraction"):
        build_pairs(photo_dir, tmp_path / "images", hard_negative_fraction=1.5)
    with pytest.raises(PairsError, match="levels"):
        build_pairs(photo_dir, tmp_path / "images", levels=("extreme",))
    with pytest.raises(PairsError, match="in one group"):
        build_pairs(photo_dir, tmp_path / "images", groups={p.name: "all" for p in photo_dir.iterdir()})
    with pytest.raises(PairsError, match="path,group"):
        bad = tmp_path / "g.csv"
        bad.write_text("file,label\na.jpg,x\n")
        build_pairs(photo_dir, tmp_path / "images", groups=bad)


def test_unreadable_original_is_reported_and_skipped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("coffee", "rocket", "camera"):
        photo(name, 96).save(src / f"{name}.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    ps = build_pairs(src, tmp_path / "images", seed=0, positives_per_original=1, chains_per_original=0)
    assert len([e for e in ps.errors if "broken.jpg" in e]) == 1
    assert [f for f in ps.files if f.status == "error"][0].path.endswith("broken.jpg")
    assert sum(p.label for p in ps.pairs) == 3


# ---------------------------------------------------------------------------------------------- import


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_import_reports_bad_rows_and_imports_the_rest(photo_dir, tmp_path, monkeypatch):
    here = tmp_path / "bench"
    (here / "img").mkdir(parents=True)
    for p in sorted(photo_dir.iterdir())[:4]:
        shutil.copyfile(p, here / "img" / p.name)
    n = sorted(p.name for p in (here / "img").iterdir())
    csv_path = _write_csv(here / "pairs.csv", ["a", "b", "label", "kind", "split"], [
        [f"img/{n[0]}", f"img/{n[1]}", "1", "my_edit", "val"],            # line 2
        [f"img/{n[2]}", f"img/{n[3]}", "0", "", ""],                      # line 3
        [f"img/{n[0]}", "img/missing.jpg", "1", "", ""],                  # line 4: missing file
        [f"img/{n[1]}", f"img/{n[2]}", "maybe", "", ""],                  # line 5: bad label
        [f"img/{n[1]}", f"img/{n[2]}", "yes", "", "train"],               # line 6: bad split
        [str((here / "img" / n[3]).resolve()), f"img/{n[2]}", "no", "", "test"],  # line 7: absolute path
        ["img", f"img/{n[2]}", "0", "", ""],                              # line 8: a folder
    ])
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the CSV's folder, not the cwd
    ps = import_pairs(Path("bench") / "pairs.csv", seed=0)
    assert len(ps.errors) == 4
    assert ":8:" in ps.errors[3] and "a folder, not a file" in ps.errors[3]
    assert ":4:" in ps.errors[0] and "missing.jpg" in ps.errors[0] and "missing" in ps.errors[0]
    assert ":5:" in ps.errors[1] and "maybe" in ps.errors[1]
    assert ":6:" in ps.errors[2] and "train" in ps.errors[2]
    sha = {name: hashlib.sha256((here / "img" / name).read_bytes()).hexdigest() for name in n}
    got = [(p.a, p.b, p.label, p.kind, p.split) for p in ps.pairs]
    assert got[0] == (sha[n[0]], sha[n[1]], True, "my_edit", "val")
    assert got[1][:4] == (sha[n[2]], sha[n[3]], False, "imported_negative")
    assert got[2] == (sha[n[3]], sha[n[2]], False, "imported_negative", "test")
    assert [f for f in ps.files if f.status == "error"][0].path.endswith("missing.jpg")


def test_import_without_optional_columns_splits_by_connected_images(photo_dir, tmp_path):
    names = sorted(p.name for p in photo_dir.iterdir())
    rows = [[str(photo_dir / names[i]), str(photo_dir / names[i + 1]), "1" if i % 4 == 0 else "0"]
            for i in range(0, 8, 2)]  # four disjoint pairs
    ps = import_pairs(_write_csv(tmp_path / "p.csv", ["a", "b", "label"], rows), seed=5)
    assert ps.errors == []
    assert {p.kind for p in ps.pairs} == {"imported_positive", "imported_negative"}
    assert {p.split for p in ps.pairs} == {"val", "test"}
    split_of = {}
    for p in ps.pairs:
        for s in (p.a, p.b):
            assert split_of.setdefault(s, p.split) == p.split


def test_import_params_column_and_missing_columns(photo_dir, tmp_path):
    a, b = sorted(photo_dir.iterdir())[:2]
    ps = import_pairs(_write_csv(tmp_path / "p.csv", ["a", "b", "label", "params"], [
        [str(a), str(b), "1", '{"quality": 30}'], [str(b), str(a), "0", "{oops"]]))
    assert ps.pairs[0].params == {"quality": 30}
    assert len(ps.errors) == 1 and ":3:" in ps.errors[0] and "JSON" in ps.errors[0]
    with pytest.raises(PairsError, match="missing column"):
        import_pairs(_write_csv(tmp_path / "q.csv", ["left", "right", "label"], [[str(a), str(b), "1"]]))


# ---------------------------------------------------------------------------------------------- contact sheet


@pytest.fixture(scope="module")
def stored(built, build_dir, photo_dir) -> Path:
    db = build_dir / "data" / "maya.duckdb"
    con = store.connect(db)
    store.save_pairset(con, "demo", origin="build", source=str(photo_dir), seed=0, params={}, pairset=built)
    con.close()
    return db


def test_contact_sheet_has_one_row_per_kind_with_true_distances(built, stored, tmp_path):
    rows = sheet_rows(stored, "demo")
    titles = [r[0] for r in rows]
    assert titles[:len(transforms.KINDS)] == list(transforms.KINDS)
    chain_titles = [t for t in titles if t.startswith("chain, ")]
    assert [t.split(":")[0] for t in chain_titles] == [f"chain, {lv}" for lv in transforms.LEVELS]
    assert titles[-2:] == [KIND_HARD_PHASH, KIND_RANDOM]
    chosen = dict(choose_rows([(p.pair_id, p.a, p.b, p.label, p.kind, json.dumps(p.params), p.split)
                               for p in built.pairs]))
    paths = _paths(built)
    for title, img_a, img_b, caption in rows:
        pair = chosen[title]
        d = int(phash.hamming(_flow_phash(paths[pair[1]]), _flow_phash(paths[pair[2]])))
        assert caption.splitlines()[0] == f"pHash d={d}"
        assert img_b.size == Image.open(paths[pair[2]]).size  # shown at its real size
        if any(p.kind == title and p.params.get("level") == "medium" for p in built.pairs):
            assert json.loads(pair[5])["level"] == "medium"  # the middle of the range, where there is one
    out = show_dataset(stored, "demo", tmp_path / "sheet.png", thumb=64)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.height > len(rows) * 64


def test_pairs_show_command(stored, tmp_path, capsys):
    data_dir = stored.parent
    assert cmd_pairs_show(argparse.Namespace(dataset="demo", out=None, data_dir=str(data_dir))) == 0
    printed = capsys.readouterr().out.strip()
    assert Path(printed) == data_dir / "reports" / "pairs-demo.png" and Path(printed).stat().st_size > 0
    with pytest.raises(PairsError, match="no dataset 'nope'.*datasets here: demo"):
        cmd_pairs_show(argparse.Namespace(dataset="nope", out=str(tmp_path / "x.png"), data_dir=str(data_dir)))
    assert not (tmp_path / "x.png").exists()


def test_derived_images_inside_the_source_are_not_taken_for_originals(tmp_path):
    src = tmp_path / "photos"
    src.mkdir()
    for name in ("coffee", "rocket", "camera"):
        photo(name, 96).save(src / f"{name}.png")
    images = src / "maya-data" / "images"  # e.g. `maya pairs build .` run where the data folder lives
    first = build_pairs(src, images, seed=0, positives_per_original=2, chains_per_original=0)
    second = build_pairs(src, images, seed=0, positives_per_original=2, chains_per_original=0)
    assert _rows(second) == _rows(first) and sum(p.label for p in second.pairs) == 6


def test_pairs_build_sees_the_files_dedup_sees_and_reports_a_broken_link(tmp_path):
    """One walker: a .jfif and a .jpe original are taken (dedup's extension list); a hidden file and a
    link are not; a link named like an image whose target is gone is a reported problem."""
    from maya.io.walk import walk_images

    src = tmp_path / "src"
    src.mkdir()
    for name, ext in (("astronaut", "jfif"), ("chelsea", "jpe"), ("coffee", "jpg")):
        photo(name, 128).save(src / f"{name}.{ext}", format="JPEG", quality=90)
    photo("rocket", 128).save(src / ".hidden.jpg", format="JPEG")
    (src / "gone.jpg").symlink_to(src / "nothing-here.jpg")
    ps = build_pairs(src, tmp_path / "images", seed=0, positives_per_original=1, chains_per_original=0, workers=1)
    originals = {Path(f.path).name for f in ps.files if Path(f.path).parent == src and f.status == "ok"}
    assert originals == {p.name for p in (src / "astronaut.jfif", src / "chelsea.jpe", src / "coffee.jpg")}
    assert originals == {Path(f.path).name for f in walk_images([src]).files}
    assert any("gone.jpg" in e and "missing" in e for e in ps.errors)
    assert [f.status for f in ps.files if Path(f.path).name == "gone.jpg"] == ["error"]
