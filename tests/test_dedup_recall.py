"""Recall without chaining (issue 13): the local-scale clause, the majority vote of a star, and the keep rule's
added-frame check, each on real arrays or real files (no mocks of the thing under test)."""

import math

import numpy as np
import pytest
from PIL import Image, ImageOps

from maya.dedup.candidates import fold_neighbours, local_scale
from maya.dedup.keep import added_frame
from maya.dedup.options import DedupOptions, resolve_thresholds
from maya.dedup.stars import attach_by_majority
from maya.rule import Rule
from tests.conftest import photo, smooth_fields


def test_the_local_clause_accepts_a_pair_that_stands_out_of_a_sparse_neighbourhood_and_not_of_a_dense_one():
    rule = Rule(8, 16, 0.85, 0.97, t_local_floor=0.5, t_local_margin=0.2)
    d = np.array([30, 30, 30, 30])
    s = np.array([0.7, 0.7, 0.45, 0.7])
    scale = np.array([0.4, 0.6, 0.1, np.inf])  # sparse; dense; below the floor; too few neighbours to know
    assert rule.matches(d, s, scale).tolist() == [True, False, False, False]
    assert rule.clauses(d, s, scale).tolist() == ["clip", "", "", ""]
    assert not rule.matches(d, s).any()  # without a scale (the study, search) there is no local clause


def test_the_local_scale_is_each_images_similarity_to_its_kth_distinct_neighbour_with_views_folded_in():
    # image 0 has neighbours 1 (twice: once through a view, best kept), 2, 3; image 1 only two neighbours
    a = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    b = np.array([1, 1, 2, 3, 0, 0, 2, 1])
    sim = np.array([0.9, 0.95, 0.8, 0.3, 1.0, 0.95, 0.5, 1.0])
    fa, fb, fs = fold_neighbours(a, b, sim)
    assert list(zip(fa.tolist(), fb.tolist())) == [(0, 1), (0, 2), (0, 3), (1, 0), (1, 2)]
    assert fs[0] == pytest.approx(0.95)
    scale = local_scale(fa, fb, fs, 4, 2)
    assert scale[0] == pytest.approx(0.8) and scale[1] == pytest.approx(0.5)
    assert math.isinf(scale[2]) and math.isinf(scale[3])


def _similarity(matrix):
    return lambda x, y: matrix[np.asarray(x), np.asarray(y)]


def test_a_left_out_copy_joins_the_star_most_of_whose_members_it_resembles_and_never_through_one_member():
    # star A = 0, 1, 2 (keeper 0); star B = 3, 4, 5; item 6 resembles 1 and 2 of A; item 7 only 3 of B (a chain
    # end); item 8 resembles both stars alike (a dense region of look-alikes): it joins neither
    n = 9
    S = np.full((n, n), 0.1)
    S[6, [1, 2]] = S[[1, 2], 6] = 0.7
    S[6, 0] = S[0, 6] = 0.55  # below the floor with the keeper itself, but its mean over the star is 0.65
    S[7, 3] = S[3, 7] = 0.9
    S[8, [0, 1, 3, 4]] = S[[0, 1, 3, 4], 8] = 0.75
    S[8, [2, 5]] = S[[2, 5], 8] = 0.5
    np.fill_diagonal(S, 1.0)
    stars = [(np.array([0, 1, 2]), 0), (np.array([3, 4, 5]), 3)]
    ii, jj = np.nonzero(np.triu(S, 1) > 0.5)
    items, voted = attach_by_majority(n, stars, ii, jj, S[ii, jj], _similarity(S), floor=0.6, margin=0.05)
    assert [g.tolist() for g in items] == [[0, 1, 2, 6], [3, 4, 5]]
    assert voted == {6}
    # with no margin asked for, item 8 still joins neither: A and B tie
    items, voted = attach_by_majority(n, stars, ii, jj, S[ii, jj], _similarity(S), floor=0.6, margin=0.0)
    assert 8 not in voted


def test_efficientnet_lite0_has_the_local_clause_and_the_vote_built_in_and_the_source_says_so(tmp_path):
    import duckdb

    from maya import store

    con = duckdb.connect(":memory:")
    store.apply_schema(con)
    o, source = resolve_thresholds(con, DedupOptions(), "efficientnet-lite0", None)
    assert (o.clip_local_floor, o.clip_local_margin, o.clip_majority, o.clip_majority_margin) == (0.55, 0.2, 0.6, 0.05)
    assert o.uses_local and o.uses_majority and source.text == "built-in defaults for efficientnet-lite0"
    given, source = resolve_thresholds(con, DedupOptions(clip_verify=0.9, clip_strict=0.98, clip_veto=0.2),
                                       "efficientnet-lite0", None)
    assert "local clause: built-in defaults for efficientnet-lite0" in source.text
    other, _ = resolve_thresholds(con, DedupOptions(), "some-clip", None)  # not measured: both off
    assert not other.uses_local and not other.uses_majority
    off, _ = resolve_thresholds(con, DedupOptions(clip_majority=float("nan"), clip_majority_margin=float("nan")),
                                "efficientnet-lite0", None)
    assert off.uses_local and not off.uses_majority and off.as_dict()["clip_majority"] is None
    with pytest.raises(ValueError, match="clip-local-margin"):
        DedupOptions(clip_local_margin=-0.1).check()


def test_an_added_uniform_frame_is_told_from_a_photos_own_dark_or_plain_edge():
    pic = photo("astronaut", 200).convert("RGB")
    framed = ImageOps.expand(pic, border=20, fill=(255, 255, 255))
    box = (20 / 240, 20 / 240, 220 / 240, 220 / 240)
    assert added_frame(framed, box)
    rng = np.random.default_rng(0)  # a dark noisy margin: a photo's own night sky, not an added border
    noisy = np.asarray(framed, dtype=np.int16).copy()
    edge = np.ones(noisy.shape[:2], bool)
    edge[20:220, 20:220] = False
    noisy[edge] = rng.integers(0, 24, (int(edge.sum()), 3))
    assert not added_frame(Image.fromarray(noisy.astype(np.uint8)), box)


def test_dedup_keeps_the_original_over_its_copy_with_an_added_border_though_the_copy_has_more_pixels(tmp_path):
    from maya.dedup.pipeline import run_dedup

    pic = photo("coffee", 256).convert("RGB")
    pic.save(tmp_path / "coffee.png")
    ImageOps.expand(pic, border=24, fill=(250, 250, 250)).save(tmp_path / "coffee-bordered.png")
    photo("rocket", 256).convert("RGB").save(tmp_path / "rocket.png")  # a distinct photo stays alone
    run = run_dedup([str(tmp_path)], DedupOptions(mode="phash"))
    assert len(run.groups) == 1
    g = run.groups[0]
    assert g.keep.path.endswith("coffee.png") and [m.path.endswith("coffee-bordered.png") for m in g.members[1:]] == [True]
    assert "added border" in g.keep_reason
    # asked for the largest file, the user gets the bordered copy: the frame check is the default rule's
    largest = run_dedup([str(tmp_path)], DedupOptions(mode="phash", keep="largest")).groups[0]
    assert largest.keep.path.endswith("coffee-bordered.png")


def test_the_cli_flags_set_the_local_clause_and_the_vote_and_nan_turns_them_off(tmp_path, tiny_clip_dir):
    import json

    from maya.cli import main

    photo("coffee", 128).convert("RGB").save(tmp_path / "coffee.png")
    photo("rocket", 128).convert("RGB").save(tmp_path / "rocket.png")
    data = tmp_path / "data"
    out = tmp_path / "report.json"
    code = main(["dedup", str(tmp_path), "--model", str(tiny_clip_dir), "--quiet", "--data-dir", str(data),
                 "--clip-local", "0.55", "0.25", "--clip-majority", "nan", "nan", "--json", str(out)])
    assert code == 0
    rule = json.loads(out.read_text())["rule"]
    assert (rule["clip_local_floor"], rule["clip_local_margin"]) == (0.55, 0.25)
    assert rule["clip_majority"] is None and "local scale" in rule["text"] and "joins the group" not in rule["text"]
    assert rule["phash_majority"] is True and "pHash vote" in rule["text"]  # on by default
    code = main(["dedup", str(tmp_path), "--model", str(tiny_clip_dir), "--quiet", "--data-dir", str(data),
                 "--no-phash-majority", "--json", str(out)])
    rule = json.loads(out.read_text())["rule"]
    assert code == 0 and rule["phash_majority"] is False and "pHash vote" not in rule["text"]


def test_a_left_out_copy_joins_the_star_most_of_whose_members_are_near_it_in_phash_and_never_two_or_one():
    from maya.dedup.stars import attach_by_phash_majority

    # star A = 0..3, star B = 4..6; item 7 is near 1, 2, 3 of A (3 of 4: a majority); item 8 near 1 only (a chain
    # end); item 9 near most of A and most of B (joins neither); item 10 near 4, whose hash 5 and 6 share (class)
    n = 11
    stars = [np.array([0, 1, 2, 3]), np.array([4, 5, 6])]
    a = np.array([7, 7, 7, 8, 9, 9, 9, 9, 9, 10])
    b = np.array([1, 2, 3, 1, 0, 1, 2, 4, 5, 4])
    taken = np.zeros(n, bool)
    taken[:7] = True
    cls = np.arange(n)
    cls[[5, 6]] = 4  # 4, 5, 6 have one pHash: the candidates paired 10 with the first of them only
    extra, voted = attach_by_phash_majority(n, stars, taken, a, b, hash_class=cls)
    assert [e.tolist() for e in extra] == [[7], [10]] and voted == {7, 10}
    without, _ = attach_by_phash_majority(n, stars, taken, a, b)  # every image its own hash: 10 has 1 of 3
    assert [e.tolist() for e in without] == [[7], []]
    taken[7] = True  # already grouped (a star or the embedding vote): never moved
    extra, voted = attach_by_phash_majority(n, stars, taken, a, b, hash_class=cls)
    assert [e.tolist() for e in extra] == [[], [10]]


def test_the_phash_vote_is_on_in_hybrid_star_grouping_only_and_the_json_says_so():
    assert DedupOptions().uses_phash_majority and DedupOptions().as_dict()["phash_majority"] is True
    assert DedupOptions(phash_majority=True).uses_phash_majority
    assert not DedupOptions(mode="clip").uses_phash_majority
    assert not DedupOptions(grouping="components").uses_phash_majority
    assert not DedupOptions(phash_majority=False).uses_phash_majority
    with pytest.raises(ValueError, match="phash-majority"):
        DedupOptions(phash_majority="yes").check()


def test_distinct_smooth_pictures_stay_apart_and_cast_no_phash_vote(tmp_path, tiny_clip_dir):
    # 48 distinct smooth pictures (random 6x6 colours, upscaled) and a JPEG copy of 8 of them. Smooth pictures
    # share low DCT frequencies, so some are within the pHash radius (16) of both files of another picture's
    # pair; the tiny random CLIP at 0.999 tells them apart. The pHash vote asks the model nothing, so smooth
    # pictures (maya.hashing.grid.smooth) cast no vote: before that rule the vote joined 4 of them to other
    # pictures' pairs.
    from maya.dedup.pipeline import run_dedup

    smooth_fields(tmp_path, seed=7)
    strict = {"mode": "hybrid", "clip_verify": 0.999, "clip_strict": 0.999}

    def sizes(**extra):
        report = run_dedup(tmp_path, DedupOptions(**strict, **extra), model=str(tiny_clip_dir), batch_size=16).report
        return sorted(len(g["members"]) for g in report["groups"])

    assert sizes() == [2] * 8  # each picture with its own copy, nothing else (the vote on, by default)
    assert sizes(phash_majority=False) == [2] * 8
