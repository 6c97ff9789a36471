"""maya dedup: ground-truth groups, incremental runs, candidates, grouping, the flow, the outputs."""

import csv
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from maya import dedup
from maya.dedup import grouping
from maya.io import ingest
from maya.embedding import knn
from maya.dedup.options import DedupOptions, DedupUsageError
from maya.dedup.pipeline import find_duplicates, run_dedup
from tests.dedup_corpus import build_dedup_corpus, precision_recall


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_dedup_corpus(tmp_path_factory.mktemp("photos"))


# ---------------------------------------------------------------------------------------------- ground truth


def test_phash_mode_finds_the_ground_truth_groups(corpus):
    report = find_duplicates(corpus.root, mode="phash")
    assert set(report) == {"groups", "errors", "rule"}
    precision, recall = precision_recall(report, corpus)
    assert (precision, recall) == (1.0, 1.0)
    # 6 originals, each with its edits (and copies); the unrelated photos are in no group
    assert len(report["groups"]) == 6
    grouped = {m["path"] for g in report["groups"] for m in g["members"]}
    assert grouped == {p for p, c in corpus.cluster.items() if not c.startswith("unrelated:")}
    for g in report["groups"]:
        # the kept file (keep rule "source"): not marked as a copy, then largest resolution, largest file, oldest
        assert g["keep"] == min((m["path"] for m in g["members"]), key=_keep_order)
        assert g["keep_reason"].startswith("keep rule source")
        assert g["members"][0]["path"] == g["keep"] and g["members"][0]["phash_distance"] == 0
        assert Path(g["keep"]).parent.name != "copies"  # a copy is never older than its source
        for m in g["members"]:
            assert set(m) == {"path", "sha256", "phash_distance", "clip_similarity", "exact", "clause", "views"}
            assert m["views"] == ("" if m["clause"] in ("keep", "exact") else m["views"]) and \
                (m["views"] in ("", "whole/whole", "inner/whole", "whole/inner", "inner/inner"))
            assert m["exact"] == (m["path"] in corpus.exact)
            assert m["clause"] == ("keep" if m["path"] == g["keep"] else
                                   "exact" if m["sha256"] == g["members"][0]["sha256"] else "phash")
            assert m["clip_similarity"] is None and 0 <= m["phash_distance"] <= dedup.PHASH_ACCEPT
            assert re.fullmatch(r"[0-9a-f]{64}", m["sha256"])
    errors = {e["path"]: e["error"] for e in report["errors"]}
    assert set(errors) == set(corpus.bad)
    for path, reason in corpus.bad.items():
        assert errors[path].startswith(reason + ": "), errors[path]
        assert path not in errors[path]  # the path is not repeated inside the message


def test_second_run_reads_no_file_and_computes_nothing(corpus, tmp_path):
    db = tmp_path / "maya.duckdb"
    first = run_dedup(corpus.root, DedupOptions(mode="phash"), db_path=db)
    n_files = len(corpus.cluster) + len(corpus.bad)
    assert first.counts["files_read"] == n_files
    assert first.counts["hashes_computed"] == len({m["sha256"] for m in _all_members(first.report)}) + len(
        [p for p, c in corpus.cluster.items() if c.startswith("unrelated:")])
    second = run_dedup(corpus.root, DedupOptions(mode="phash"), db_path=db)
    c = second.counts
    assert (c["files_read"], c["files_reused"], c["decoded"], c["hashes_computed"]) == (0, n_files, 0, 0)
    assert second.report == first.report
    assert second.run_id == first.run_id + 1

    # a touched file (same bytes, new mtime) is read again, but its features are reused
    path = Path(next(iter(corpus.cluster)))
    st = path.stat()
    os.utime(path, (st.st_atime, st.st_mtime + 5))
    third = run_dedup(corpus.root, DedupOptions(mode="phash"), db_path=db)
    assert (third.counts["files_read"], third.counts["hashes_computed"], third.counts["decoded"]) == (1, 0, 0)
    assert third.report == first.report


def _keep_order(path):
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
    st = os.stat(path)
    return (Path(path).parent.name == "copies", -w * h, -st.st_size, st.st_mtime, path)


def _all_members(report):
    return [m for g in report["groups"] for m in g["members"]]


def test_a_new_copy_is_the_only_thing_computed(tmp_path):
    root = tmp_path / "photos"
    build_dedup_corpus(root, originals=("coffee", "rocket"), unrelated=("brick",), edits_per_original=1)
    db = tmp_path / "maya.duckdb"
    run_dedup(root, DedupOptions(mode="phash"), db_path=db)
    from PIL import Image

    with Image.open(root / "originals" / "rocket.png") as im:
        im.convert("RGB").save(root / "edits" / "rocket_again.jpg", quality=80)
    again = run_dedup(root, DedupOptions(mode="phash"), db_path=db)
    assert (again.counts["files_read"], again.counts["hashes_computed"]) == (1, 1)
    rocket = next(g for g in again.report["groups"] if g["keep"].endswith("rocket.png"))
    assert str(root / "edits" / "rocket_again.jpg") in {m["path"] for m in rocket["members"]}


@pytest.mark.slow
def test_hybrid_finds_crops_that_phash_misses(tmp_path):
    """efficientnet-lite0 (real ImageNet weights). Thresholds measured for this model on these photos:
    edited copies and medium crops have similarity 0.885-0.985 to their original, distinct photos at most
    0.35; pHash puts the crops 16-24 bits away."""
    corpus = build_dedup_corpus(tmp_path / "photos", side=160, originals=("astronaut", "coffee", "rocket"),
                                unrelated=("brick", "hubble_deep_field"), edits_per_original=1, with_crops=True)
    crops = {p for p in corpus.cluster if p.endswith("_crop.png")}
    db = tmp_path / "maya.duckdb"
    phash_only = run_dedup(corpus.root, DedupOptions(mode="phash"), db_path=db).report
    assert not crops & {m["path"] for m in _all_members(phash_only)}
    assert precision_recall(phash_only, corpus)[1] < 1.0
    options = DedupOptions(mode="hybrid", clip_verify=0.8, clip_strict=0.85)
    run = run_dedup(corpus.root, options, db_path=db, model="efficientnet-lite0", device="cpu")
    assert precision_recall(run.report, corpus) == (1.0, 1.0)
    assert run.counts["hashes_computed"] == 0  # the phash run's hashes are reused
    for g in run.report["groups"]:
        for m in g["members"]:
            assert m["clip_similarity"] is not None and 0.85 <= m["clip_similarity"] <= 1.0 + 1e-6
    # the crops came in through the embedding-only clause
    from maya import store

    con = store.connect(db, read_only=True)
    rules = dict(con.execute("SELECT rule, count(*) FROM dedup_pairs WHERE run_id = ? GROUP BY rule",
                             [run.run_id]).fetchall())
    con.close()
    assert rules.get("clip", 0) >= 1 and rules.get("phash", 0) >= 1


# ---------------------------------------------------------------------------------------------- candidates


def test_clip_topk_equals_brute_force():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(301, 24)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    idx, sim = knn.clip_topk(v, 5, block=7)  # blocks that do not divide N
    full = v @ v.T
    np.fill_diagonal(full, -np.inf)
    want = np.argsort(-full, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_allclose(sim, np.take_along_axis(full, want, axis=1), rtol=1e-5)
    # memory-bounded block choice gives the same answer
    idx2, _ = knn.clip_topk(v, 5, max_block_bytes=4 * 301 * 3)
    np.testing.assert_array_equal(idx2, idx)
    a, b = knn.pairs_above(idx, sim, 0.5)
    brute = {(i, j) for i in range(301) for j in range(i + 1, 301)
             if full[i, j] >= 0.5 and (j in want[i] or i in want[j])}
    assert set(zip(a.tolist(), b.tolist())) == brute
    assert np.all(a < b)


def test_clip_topk_tiles_and_row_slices_give_the_same_answer():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(500, 32)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    idx, sim = knn.clip_topk(v, 6)
    tiny_idx, tiny_sim = knn.clip_topk(v, 6, max_block_bytes=16 * 8 * 37)  # 8 rows x 37 columns per tile
    np.testing.assert_array_equal(tiny_idx, idx)
    np.testing.assert_allclose(tiny_sim, sim, rtol=1e-6)
    part_idx, _ = knn.clip_topk(v, 6, rows=slice(120, 260))
    np.testing.assert_array_equal(part_idx, idx[120:260])
    assert not np.any(idx == np.arange(500)[:, None])  # never its own neighbour


def test_clip_topk_small_inputs():
    one = np.ones((1, 4), np.float32) / 2
    idx, sim = knn.clip_topk(one, 3)
    assert idx.shape == (1, 0) and sim.shape == (1, 0)
    two = np.eye(2, dtype=np.float32)
    idx, sim = knn.clip_topk(two, 3)
    assert idx.tolist() == [[1], [0]] and sim.tolist() == [[0.0], [0.0]]


def test_candidates_join_identical_hashes_as_a_star_and_agree_with_brute_force():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**63, size=40, dtype=np.uint64)
    hashes = np.concatenate([base, base[:5], base[:5]])  # 5 hashes three times each
    flips = np.uint64(1) << rng.integers(0, 64, size=10).astype(np.uint64)
    hashes = np.concatenate([hashes, base[10:20] ^ flips])  # near copies, 1 bit away
    n = hashes.size
    images = dedup.Images([f"{i:064x}" for i in range(n)], hashes, None, np.ones(n, np.int64), np.ones(n, np.int64))
    options = DedupOptions(mode="phash", phash_accept=4)
    a, b = dedup.candidate_pairs(images, options)
    pairs = dedup.verify_pairs(images, a, b, options)
    labels = grouping.connected_components(n, pairs.a, pairs.b)
    from maya.hashing.phash import hamming

    d = hamming(hashes[:, None], hashes[None, :])
    brute = grouping.connected_components(n, *np.nonzero(np.triu(d <= 4, 1)))
    # same partition as all pairs within the threshold, with far fewer pairs than a clique per hash
    assert _partition(labels) == _partition(brute)
    assert len(pairs) < int(np.triu(d <= 4, 1).sum())
    assert np.all(pairs.phash_distance <= 4) and set(pairs.rule) == {"phash"}


def test_hybrid_candidates_hold_every_pair_the_model_must_decide():
    rng = np.random.default_rng(2)
    base = rng.integers(0, 2**63, size=30, dtype=np.uint64)
    noise = np.zeros(30, np.uint64)
    for k in range(30):  # 10-bit flips: beyond phash_accept, within phash_radius
        for bit in rng.choice(64, size=10, replace=False):
            noise[k] |= np.uint64(1) << np.uint64(bit)
    hashes = np.concatenate([base, base[:6], base ^ noise, (base ^ noise)[:4]])  # repeated on both sides
    n = hashes.size
    v = rng.normal(size=(n, 8)).astype(np.float32)
    v[30:36] = v[:6] + 0.05 * rng.normal(size=(6, 8)).astype(np.float32)
    v[36:66] = v[:30] + rng.choice([0.05, 3.0], size=(30, 1)).astype(np.float32) * rng.normal(size=(30, 8)).astype(
        np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    images = dedup.Images([f"{i:064x}" for i in range(n)], hashes, v, np.ones(n, np.int64), np.ones(n, np.int64))
    options = DedupOptions(mode="hybrid", phash_accept=4, phash_radius=12, clip_verify=0.9, clip_strict=0.999)
    pairs = dedup.verify_pairs(images, *dedup.candidate_pairs(images, options), options)
    from maya.hashing.phash import hamming

    i, j = np.triu_indices(n, 1)
    rule = dedup.decide(hamming(hashes[i], hashes[j]), np.einsum("ij,ij->i", v[i], v[j]), options)
    verified = {(a, b) for a, b, r in zip(i.tolist(), j.tolist(), rule) if r == "phash+clip"}
    assert verified and verified <= set(zip(pairs.a.tolist(), pairs.b.tolist()))
    brute = grouping.connected_components(n, i[rule != ""], j[rule != ""])
    assert _partition(grouping.connected_components(n, pairs.a, pairs.b)) == _partition(brute)


def _partition(labels):
    return sorted(sorted(np.flatnonzero(labels == k).tolist()) for k in np.unique(labels))


def test_decide_is_one_rule_with_three_settings():
    d = np.array([3, 12, 12, 30, 30])
    s = np.array([0.1, 0.92, 0.5, 0.97, 0.5])
    o = DedupOptions(phash_accept=8, phash_radius=16, clip_verify=0.9, clip_strict=0.95)
    assert dedup.decide(d, s, o).tolist() == ["phash", "phash+clip", "", "clip", ""]
    assert dedup.decide(d, None, DedupOptions(mode="phash")).tolist() == ["phash", "", "", "", ""]
    assert dedup.decide(d, s, DedupOptions(mode="clip", clip_strict=0.95)).tolist() == ["", "", "", "clip", ""]


def test_thresholds_come_from_built_in_defaults_or_a_named_calibration_never_the_latest_study(tmp_path):
    from maya import store

    con = store.connect(tmp_path / "maya.duckdb")
    unset = DedupOptions()
    o, src = dedup.resolve_thresholds(con, unset, "efficientnet-lite0", "efficientnet-lite0|pp1")
    assert (o.clip_verify, o.clip_strict, o.clip_veto) == dedup.MODEL_FALLBACKS["efficientnet-lite0"]
    assert src.text == "built-in defaults for efficientnet-lite0" and src.evaluate_run is None
    o, src = dedup.resolve_thresholds(con, unset, "some/clip", "some/clip@x|pp1")
    assert (o.clip_verify, o.clip_strict, o.clip_veto) == (dedup.CLIP_VERIFY, dedup.CLIP_STRICT, dedup.CLIP_VETO)
    assert "CLIP-like" in src.text
    # a completed evaluate run of the model with scored val pairs: 3 positives, 2 negatives
    run = store.start_run(con, flow="evaluate", dataset="d", model="m|pp1", parameters={})
    store.finish_run(con, run, status="completed")
    sims, labels, dists = [0.99, 0.9, 0.8, 0.7, 0.5], [True, True, False, True, False], [2, 12, 30, 30, 30]
    con.execute("INSERT INTO datasets (name, origin) VALUES ('d', 'import')")
    for k, (s_, y, d_) in enumerate(zip(sims, labels, dists)):
        con.execute("INSERT INTO pairs VALUES ('d', ?, ?, ?, ?, 'x', NULL, 'val', NULL)", [k, f"a{k}", f"b{k}", y])
        con.execute("INSERT INTO scores (run_id, dataset, pair_id, phash_distance, clip_similarity, clip_computed, "
                    "clip_needed) VALUES (?, 'd', ?, ?, ?, true, NULL)", [run, k, d_, s_])
    # the latest study is NOT used unless named
    o, src = dedup.resolve_thresholds(con, unset, "m", "m|pp1")
    assert src.evaluate_run is None and "CLIP-like" in src.text
    for name in (str(run), "d"):
        o, src = dedup.resolve_thresholds(con, unset, "m", "m|pp1", calibration=name)
        # precision >= 0.999: only the pairs above the first negative (0.8) -> strict 0.9
        assert o.clip_strict == pytest.approx(0.9) and src.evaluate_run == run
        assert o.clip_verify == pytest.approx(0.9)  # the band pair (d 12) is a positive at 0.9
        assert o.clip_veto == pytest.approx(0.9)  # 0.05 below the pHash-accepted positive (0.99), capped at verify
        assert f"evaluate run {run}" in src.text
    with pytest.raises(DedupUsageError, match="no completed evaluate run"):
        dedup.resolve_thresholds(con, unset, "other", "other|pp1", calibration="d")
    # explicit values always win
    o, src = dedup.resolve_thresholds(con, DedupOptions(clip_verify=0.5, clip_strict=0.99, clip_veto=0.1), "m", "m|pp1")
    assert (o.clip_verify, o.clip_strict, o.clip_veto) == (0.5, 0.99, 0.1) and src.text == "thresholds given as flags"
    con.close()


def test_the_model_vetoes_a_phash_accept_it_disagrees_with_strongly():
    o = DedupOptions(phash_accept=8, phash_radius=16, clip_verify=0.8, clip_strict=0.95, clip_veto=0.3)
    d = np.array([0, 0, 0])
    s = np.array([0.15, 0.5, np.nan])  # the model disagrees; agrees; no embedding (pHash alone decides)
    assert dedup.decide(d, s, o).tolist() == ["", "phash", "phash"]
    assert o.rule.matches(d, s).tolist() == [False, True, True]


# ---------------------------------------------------------------------------------------------- grouping


def test_chain_is_reported_and_split_at_its_weakest_link():
    # 0 - 1 - 2 - 3, with the 1-2 link the weakest; only neighbours accept each other directly
    a, b, s = np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([0.99, 0.91, 0.98])
    rank = np.arange(4)
    accepts = lambda x, y: np.abs(np.asarray(x) - np.asarray(y)) <= 1  # noqa: E731
    [g] = grouping.group_pairs(4, a, b, s, rank=rank, accepts=accepts)
    assert g.chained and not g.split and g.representative == 0
    assert g.items.tolist() == [0, 1, 2, 3]
    assert g.weakest_link == (1, 2, pytest.approx(0.91))
    parts = grouping.group_pairs(4, a, b, s, rank=rank, accepts=accepts, split_chains=True)
    assert sorted(p.items.tolist() for p in parts) == [[0, 1], [2, 3]]
    assert all(p.split and not p.chained for p in parts)
    # without a direct-accept test nothing is called a chain
    [g] = grouping.group_pairs(4, a, b, s, rank=rank)
    assert not g.chained


def test_a_clique_is_not_a_chain_and_the_representative_is_the_best_ranked():
    a, b = np.array([0, 0, 1]), np.array([1, 2, 2])
    [g] = grouping.group_pairs(3, a, b, np.array([0.9, 0.95, 0.97]), rank=np.array([2, 0, 1]),
                               accepts=lambda x, y: np.ones(len(x), bool))
    assert g.representative == 1 and g.items.tolist() == [1, 0, 2] and not g.chained
    assert g.weakest_link[:2] == (0, 2)  # the strongest spanning tree drops 0-1 (0.90) and keeps 0-2 (0.95)


def test_representative_rank_order():
    # pixels first, then bytes, then oldest, then name
    pixels = [100, 200, 200, 200, 200]
    size = [9, 5, 7, 7, 7]
    mtime = [0, 0, 3.0, 1.0, 1.0]
    names = ["a", "b", "c", "e", "d"]
    assert grouping.representative_rank(pixels, size, mtime, names).tolist() == [4, 3, 2, 1, 0]


def test_chained_groups_from_real_images_can_be_split(tmp_path):
    """A slow zoom: each step is within the pHash threshold of the next, the ends are not."""
    from PIL import Image

    from tests.conftest import photo

    img = photo("astronaut", 512)
    for k in range(8):  # steps are 2-8 bits apart, the first and last frame 24 bits
        s = 8 * k
        img.crop((s, s, 512 - s, 512 - s)).resize((256, 256), Image.Resampling.LANCZOS).save(tmp_path / f"zoom{k}.png")
    chained = find_duplicates(tmp_path, mode="phash", phash_accept=8, grouping="components")
    [g] = chained["groups"]
    assert len(g["members"]) == 8 and g["chained"] and g["weakest_link"] is not None
    assert max(m["phash_distance"] for m in g["members"]) > 8
    split = find_duplicates(tmp_path, mode="phash", phash_accept=8, split_chains=True, grouping="components")
    assert len(split["groups"]) >= 2
    parts = [m["path"] for part in split["groups"] for m in part["members"]]
    assert len(parts) == len(set(parts)) and set(parts) <= {m["path"] for m in g["members"]}
    for part in split["groups"]:
        assert not part["chained"] and all(m["phash_distance"] <= 8 for m in part["members"])
    # the default grouping (stars) never chains: every member is within the rule of the kept file
    stars = find_duplicates(tmp_path, mode="phash", phash_accept=8)
    assert len(stars["groups"]) >= 2
    for part in stars["groups"]:
        assert not part["chained"] and all(m["phash_distance"] <= 8 for m in part["members"])


# ---------------------------------------------------------------------------------------------- walking


def test_walk_rules(tmp_path, photo_dir):
    src = next(photo_dir.glob("*.png"))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.png").write_bytes(src.read_bytes())
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "h.png").write_bytes(src.read_bytes())
    (tmp_path / ".dot.png").write_bytes(src.read_bytes())
    (tmp_path / "readme.txt").write_text("not an image")
    (tmp_path / "folder.jpg").mkdir()  # a folder named like an image is walked into
    (tmp_path / "folder.jpg" / "inside.PNG").write_bytes(src.read_bytes() + b"\0")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir(exist_ok=True)
    (outside / "far.png").write_bytes(src.read_bytes() + b"\0\0")
    os.symlink(outside / "far.png", tmp_path / "link.png")
    os.symlink(tmp_path, tmp_path / "a" / "loop")  # a folder link back to the root
    os.link(tmp_path / "a" / "one.png", tmp_path / "hardlink.png")

    w = ingest.walk_images([tmp_path])
    names = sorted(os.path.relpath(f.path, tmp_path) for f in w.files)
    # a/one.png is the same file as hardlink.png, which the walk met first (a folder's files come
    # before its sub-folders)
    assert names == ["folder.jpg/inside.PNG", "hardlink.png"]
    assert w.problems == []
    assert w.skipped == {"hidden": 2, "not_an_image_name": 1, "symlink": 2, "same_file": 1}

    w = ingest.walk_images([tmp_path], follow_symlinks=True, include_hidden=True)
    names = sorted(os.path.relpath(f.path, tmp_path) for f in w.files)
    assert names == [".dot.png", ".hidden/h.png", "folder.jpg/inside.PNG", "hardlink.png", "link.png"]
    assert w.skipped.get("same_folder") == 1  # the loop ends
    # overlapping roots: each file once
    w = ingest.walk_images([tmp_path, tmp_path / "a", str(tmp_path / "a" / "one.png")])
    assert len(w.files) == 2


def test_usage_errors(tmp_path):
    with pytest.raises(DedupUsageError, match="no such folder"):
        find_duplicates(tmp_path / "nope", mode="phash")
    with pytest.raises(DedupUsageError, match="give at least one folder"):
        find_duplicates([], mode="phash")
    for bad in [dict(mode="fuzzy"), dict(phash_accept=70), dict(phash_accept=-1), dict(phash_accept=2.5),
                dict(clip_verify=1.5), dict(clip_strict=float("nan")), dict(clip_k=0),
                dict(mode="hybrid", phash_accept=10, phash_radius=5)]:
        with pytest.raises(DedupUsageError):
            DedupOptions(**bad).check()
    assert issubclass(DedupUsageError, ValueError)


def test_cli_usage_errors_are_one_line_and_exit_2(tmp_path, capsys):
    from maya.cli.dedup import main

    assert main([str(tmp_path / "missing"), "--mode", "phash", "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"maya: error: no such folder: {tmp_path / 'missing'}"
    assert main([str(tmp_path), "--phash-accept", "99", "--mode", "phash"]) == 2
    assert "phash-accept must be a whole number of bits in 0..64" in capsys.readouterr().err
    assert main([str(tmp_path), "--yes"]) == 2
    assert "--yes only goes with" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- outputs


@pytest.mark.slow
def test_cli_writes_json_csv_and_html(corpus, tmp_path, capsys):
    from maya.cli.dedup import main

    out = tmp_path / "out"
    rc = main([str(corpus.root), "--mode", "phash", "--data-dir", str(tmp_path / "data"), "--json",
               str(out / "r.json"), "--csv", str(out / "r.csv"), "--html", str(out / "g.html")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "3 files could not be used:" in text and "truncated: " in text
    assert "groups: 6, of which 0 hold only byte-identical copies" in text
    report = json.loads((out / "r.json").read_text())
    assert report == find_duplicates(corpus.root, mode="phash")
    with open(out / "r.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(g["members"]) for g in report["groups"])
    assert [r["path"] for r in rows] == [m["path"] for g in report["groups"] for m in g["members"]]
    assert sum(r["keep"] == "True" for r in rows) == len(report["groups"])
    page = (out / "g.html").read_text()
    assert page.count('class="group"') == len(report["groups"])
    # one thumbnail per distinct content, drawn once per member
    assert page.count("data:image/jpeg;base64,") == len(rows)
    assert page.count("KEEP") == len(report["groups"]) and page.count('class="badge x"') == len(corpus.exact)
    assert "src=\"http" not in page and "<script" not in page  # self-contained
    assert all(os.stat(out / n).st_mode & 0o777 == 0o644 for n in ("r.json", "r.csv", "g.html"))


# ---------------------------------------------------------------------------------------------- the flow


@pytest.mark.slow
def test_flow_equals_library_and_fills_duckdb(prefect_server, corpus, tiny_clip_dir, tmp_path):
    from maya.flows.dedup import dedup as dedup_flow
    from maya import store

    data = tmp_path / "data"
    summary = dedup_flow(paths=[str(corpus.root)], mode="hybrid", data_dir=str(data), model=str(tiny_clip_dir),
                         batch_size=8, json_path=str(tmp_path / "r.json"))
    library = run_dedup(corpus.root, DedupOptions(mode="hybrid"), model=str(tiny_clip_dir), batch_size=8)
    assert _shape(summary["report"]) == _shape(library.report)
    assert json.loads((tmp_path / "r.json").read_text()) == summary["report"]
    assert summary["counts"]["embeddings_computed"] == summary["counts"]["images"] - len(corpus.bad)

    con = store.connect(data / "maya.duckdb", read_only=True)
    run = con.execute("SELECT flow, status, flow_run_id, embeddings_computed FROM runs WHERE run_id = ?",
                      [summary["run_id"]]).fetchone()
    assert run[0] == "dedup" and run[1] == "completed" and run[2] and run[3] > 0
    n_groups, n_members = con.execute(
        "SELECT groups, (SELECT count(*) FROM dedup_members WHERE run_id = ?) FROM dedup_runs WHERE run_id = ?",
        [summary["run_id"], summary["run_id"]]).fetchone()
    assert n_groups == len(summary["report"]["groups"])
    assert n_members == sum(len(g["members"]) for g in summary["report"]["groups"])
    errors = dict(con.execute("SELECT path, reason FROM dedup_errors WHERE run_id = ?", [summary["run_id"]]).fetchall())
    assert errors == corpus.bad
    # stored pair scores equal what SQL recomputes from the stored features: the pHash distance is the
    # dihedral one (the least over either image's 8 flips/turns against the other's plain hash), and both
    # scores are over the best pair of views (whole images and inner views, where a content has one)
    bad = con.execute("""
        SELECT count(*) FROM dedup_pairs p JOIN runs r USING (run_id)
        JOIN hashes ha ON ha.sha256 = p.a AND ha.algorithm = 'phash64-v2'
        JOIN hashes hb ON hb.sha256 = p.b AND hb.algorithm = 'phash64-v2'
        LEFT JOIN hashes va ON va.sha256 = p.a AND va.algorithm = 'phash64-v2@inner-v2'
        LEFT JOIN hashes vb ON vb.sha256 = p.b AND vb.algorithm = 'phash64-v2@inner-v2'
        JOIN embeddings ea ON ea.sha256 = p.a AND ea.model = r.model
        JOIN embeddings eb ON eb.sha256 = p.b AND eb.model = r.model
        LEFT JOIN embeddings wa ON wa.sha256 = p.a AND wa.model = r.model || '@inner-v2'
        LEFT JOIN embeddings wb ON wb.sha256 = p.b AND wb.model = r.model || '@inner-v2'
        WHERE p.run_id = ? AND (least((SELECT min(bit_count(xor(v.bits, hb.bits))) FROM hash_variants v WHERE v.sha256 = p.a),
                                      (SELECT min(bit_count(xor(v.bits, ha.bits))) FROM hash_variants v WHERE v.sha256 = p.b),
                                      bit_count(xor(va.bits, hb.bits)), bit_count(xor(ha.bits, vb.bits)),
                                      bit_count(xor(va.bits, vb.bits)))
                                <> p.phash_distance
              OR bit_count(xor(ha.bits, hb.bits)) < p.phash_distance
              OR abs(greatest(list_cosine_similarity(ea.vector, eb.vector), list_cosine_similarity(wa.vector, eb.vector),
                              list_cosine_similarity(ea.vector, wb.vector), list_cosine_similarity(wa.vector, wb.vector))
                     - p.clip_similarity) > 1e-5)""",
        [summary["run_id"]]).fetchone()[0]
    assert bad == 0
    con.close()


def _shape(report):
    """Groups as (keep, [(path, phash_distance, exact)]) and errors, similarities rounded."""
    return ([(g["keep"], [(m["path"], m["phash_distance"], m["exact"],
                           None if m["clip_similarity"] is None else round(m["clip_similarity"], 4))
                          for m in g["members"]]) for g in report["groups"]], report["errors"])


def test_the_kept_file_is_the_source_not_a_backup_copy_unless_the_user_says_otherwise(tmp_path):
    from tests.conftest import photo

    img = photo("coffee", 256)
    (tmp_path / "a" / "backup").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    img.save(tmp_path / "a" / "backup" / "coffee.png")
    img.save(tmp_path / "b" / "coffee.png")  # byte-identical, newer, under the second root
    os.utime(tmp_path / "b" / "coffee.png", (2_000_000_000, 2_000_000_000))
    img.resize((512, 341)).save(tmp_path / "a" / "coffee-big.png")  # more pixels, first root
    roots = [str(tmp_path / "a"), str(tmp_path / "b")]

    def kept(**kw):
        [g] = find_duplicates(roots, mode="phash", **kw)["groups"]
        return os.path.relpath(g["keep"], tmp_path), g["keep_reason"]

    assert kept() == ("a/coffee-big.png", "keep rule source: under an earlier root on the command line")
    assert kept(keep="largest")[0] == "a/coffee-big.png"
    assert kept(prefer=["*/b/*"]) == ("b/coffee.png", "keep rule source: matches --prefer")
    assert kept(keep="newest") == ("b/coffee.png", "keep rule newest: newest")
    # without the bigger copy: of two byte-identical files the one outside backup/ is kept, though it is newer
    os.remove(tmp_path / "a" / "coffee-big.png")
    assert kept() == ("b/coffee.png", "keep rule source: not in a folder or under a name that marks a copy")
    assert kept(keep="oldest")[0] == "a/backup/coffee.png"
    assert kept(keep="first-root")[0] == "a/backup/coffee.png"
    with pytest.raises(DedupUsageError, match="keep rule"):
        find_duplicates(roots, mode="phash", keep="biggest")


def test_chained_and_large_groups_are_held_back_from_actions_unless_asked():
    from maya.dedup.outputs import LARGE_GROUP_FILES, actionable

    member = {"path": "x", "sha256": "s", "phash_distance": 0, "clip_similarity": None, "exact": False}
    groups = [{"keep": "a", "members": [member] * 3, "chained": True},
              {"keep": "b", "members": [member] * (LARGE_GROUP_FILES + 1), "chained": False},
              {"keep": "c", "members": [member] * 2, "chained": False}]
    report, held = actionable({"groups": groups, "errors": []})
    assert [g["keep"] for g in report["groups"]] == ["c"]
    assert [why for _, why in held] == ["chained", f"large ({LARGE_GROUP_FILES + 1} files)"]
    report, held = actionable({"groups": groups, "errors": []}, include_risky=True)
    assert len(report["groups"]) == 3 and held == []


def test_every_dedup_option_is_a_parameter_of_the_dedup_flow():
    # the CLI hands the flow every DedupOptions field by name (maya.cli.dedup._flow_options): a field the
    # flow lacks is a ParameterBindError whenever dedup runs through Prefect
    import inspect
    from dataclasses import fields

    from maya.cli.dedup import _flow_options
    from maya.flows.dedup import dedup as dedup_flow

    params = inspect.signature(dedup_flow.fn).parameters
    assert {f.name for f in fields(DedupOptions)} <= set(params)
    off = _flow_options(DedupOptions(clip_majority=float("nan"), extra_views=("centre",)))
    assert off["clip_majority"] != off["clip_majority"] and off["extra_views"] == ["centre"]  # nan stays nan


@pytest.mark.slow
def test_the_flow_runs_the_options_the_library_runs_including_clauses_turned_off(prefect_server, corpus,
                                                                                   tiny_clip_dir, tmp_path):
    from maya.cli.dedup import _flow_options
    from maya.flows.dedup import dedup as dedup_flow

    nan = float("nan")
    options = DedupOptions(mode="hybrid", clip_majority=nan, clip_majority_margin=nan, clip_local_floor=nan,
                           clip_local_margin=nan, phash_majority=False, extra_views=("centre",))
    summary = dedup_flow(paths=[str(corpus.root)], data_dir=str(tmp_path / "data"), model=str(tiny_clip_dir),
                         batch_size=8, **_flow_options(options))
    library = run_dedup(corpus.root, options, model=str(tiny_clip_dir), batch_size=8)
    assert summary["options"] == library.options.as_dict()
    text = summary["report"]["rule"]["text"]
    assert "local scale" not in text and "left out" not in text, text  # the clause and both votes off, as asked
    assert _shape(summary["report"]) == _shape(library.report)


def test_star_groupings_compressed_rows_are_scipys_with_duplicates_summed():
    from scipy.sparse import coo_matrix

    from maya.dedup.stars import _csr

    rng = np.random.default_rng(7)
    for n, p in ((1, 0), (5, 12), (40, 300), (200, 50)):
        rows, cols = rng.integers(0, n, p), rng.integers(0, n, p)  # repeats included: they are summed
        vals = rng.random(p)
        want = coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
        want.sum_duplicates()
        indptr, indices, data = _csr(n, rows, cols, vals)
        np.testing.assert_array_equal(indptr, want.indptr)
        np.testing.assert_array_equal(indices, want.indices)
        np.testing.assert_allclose(data, want.data)


def test_each_stars_keeper_is_its_best_ranked_member_accepted_with_all_others_tried_for_all_stars_at_once():
    from maya.dedup.stars import star_groups

    # two stars: 0 with 1, 2, 3 and 10 with 11, 12; rank prefers 3, then 1, then the centre in the first, 12 in
    # the second. The rule refuses 3 with 2 (so 3 is not kept), accepts 1 with every member; 12 with all.
    a = np.array([0, 0, 0, 10, 10])
    b = np.array([1, 2, 3, 11, 12])
    rank = np.arange(13)[::-1].copy()
    rank[[3, 1, 0, 2, 12, 10, 11]] = [0, 1, 2, 3, 4, 5, 6]
    refused = {(3, 2), (2, 3)}
    calls = []

    def accepts(x, y):
        calls.append(len(x))
        return np.array([(int(i), int(j)) not in refused for i, j in zip(x, y)])

    stars = star_groups(13, a, b, np.ones(5), rank=rank, accepts=accepts)
    assert [(items.tolist(), keeper) for items, keeper, _ in stars] == [([1, 0, 2, 3], 1), ([12, 10, 11], 12)]
    assert len(calls) == 2  # round 1: 3 and 12 tried together; round 2: 1 (not a call per star and candidate)
    refused |= {(1, 0), (0, 1), (12, 11), (11, 12)}  # now only the centres are accepted with all
    assert [keeper for _, keeper, _ in star_groups(13, a, b, np.ones(5), rank=rank, accepts=accepts)] == [0, 10]
