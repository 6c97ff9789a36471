"""The collection benchmark: originals and edited copies laid out as files, dedup's groups scored against the truth."""

from __future__ import annotations

import pytest

from maya.evaluation.collection import TruthFile, grouping_metrics
from tests.conftest import photo


def _five_photo_collection(tmp_path):
    """Dataset "c" in ``tmp_path/maya.duckdb``: five bundled photos, seed 0, 4 edits and 1 chain each, laid out
    under ``tmp_path/collection``. Returns ``(db, layout, truth)``."""
    from maya import store
    from maya.evaluation.collection import read_truth
    from maya.pairs import build as pairs
    from maya.pairs.collection import lay_out_collection

    src = tmp_path / "originals"
    src.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera"):
        photo(name, 256).save(src / f"{name}.png")
    db = tmp_path / "maya.duckdb"
    ps = pairs.build_pairs(src, tmp_path / "images", seed=0, positives_per_original=4, chains_per_original=1)
    con = store.connect(db)
    try:
        store.save_pairset(con, "c", origin="build", source=str(src), seed=0, params={}, pairset=ps)
        layout = lay_out_collection(con, "c", tmp_path / "collection")
        truth = read_truth(con, "c")
    finally:
        con.close()
    return db, layout, truth


def test_pairwise_metrics_count_every_file_pair_and_leave_semantic_siblings_out():
    t = {"a0": TruthFile("A", None, "original"), "a1": TruthFile("A", None, "crop"),
         "a2": TruthFile("A", None, "hflip"), "b0": TruthFile("B", "g", "original"),
         "b1": TruthFile("B", "g", "crop"), "c0": TruthFile("C", "g", "original"), "d0": TruthFile("D", None, "original")}
    # a2 missed; b and c (one semantic group) grouped together: their cross pairs count neither way; d0 wrongly in
    m = grouping_metrics(t, [["a0", "a1", "d0"], ["b0", "b1", "c0"]], chained=[False, True])
    assert m.true_pairs == 3 + 1  # A: 3 pairs, B: 1
    assert m.true_positives == 1 + 1  # a0-a1, b0-b1
    assert m.predicted_pairs == 3 + 1  # group 1: 3 pairs; group 2: b0-b1 only (b-c pairs excluded)
    assert (m.precision, m.recall) == (pytest.approx(0.5), pytest.approx(0.5))
    assert m.largest_group == 3 and m.largest_true_group == 3 and m.chained_groups == 1
    assert m.mixed_groups == 1  # group 1 (A with D); group 2 is one semantic group
    assert m.kind_recall["hflip"] == (1, 0) and m.kind_recall["crop"] == (2, 2)
    assert m.kind_recall["original"] == (4, 2)  # a0, b0 found; c0 (only semantic siblings), d0 not


def test_a_collection_from_the_bundled_photos_has_pinned_grouping_metrics(tmp_path):
    from maya import store
    from maya.dedup.options import DedupOptions
    from maya.evaluation.collection import evaluate_collection
    from maya.pairs.collection import lay_out_collection

    db, c, truth = _five_photo_collection(tmp_path)
    assert c.originals == 5 and c.files == len(truth) == 5 * 6
    assert {t.kind for t in truth.values()} >= {"original", "chain"}
    with pytest.raises(Exception, match="exists"):
        con = store.connect(db)
        try:
            lay_out_collection(con, "c", tmp_path / "collection")
        finally:
            con.close()

    r = evaluate_collection(db, "c", DedupOptions(mode="phash"))
    m = r.metrics
    # pinned (seed 0, see PINNED_TP): pHash alone never joins two of these photos
    assert (m.files, m.true_pairs) == (30, 75)
    assert m.mixed_groups == 0 and m.precision == 1.0
    assert (m.true_positives, m.largest_group) == (PINNED_TP, PINNED_LARGEST)
    assert m.recall == pytest.approx(PINNED_TP / 75)
    assert "pHash d <= 8" in r.rule and r.metrics_id == 1
    con = store.connect(db)
    row = con.execute("SELECT dataset, files, true_positives, f1, rule_source FROM latest_collection_metrics").fetchone()
    kinds = con.execute("SELECT count(*) FROM collection_kind_recall WHERE metrics_id = 1").fetchone()[0]
    con.close()
    assert row[:3] == ("c", 30, PINNED_TP) and row[3] == pytest.approx(m.f1) and "pHash" in row[4]
    assert kinds == len(m.kind_recall)
    # the study report shows the collection's metrics
    from maya.report.study import _collection_section

    con = store.connect(db)
    h, md = [], []
    _collection_section(con, {"dataset": "c"}, h, md)
    con.close()
    assert "Collection" in h[0] and f"{m.f1:.3f}" in md[0]
    # without the inner views the (dihedral) pHash finds fewer of the copies, never a wrong one
    plain = evaluate_collection(db, "c", DedupOptions(mode="phash", views=False)).metrics
    assert (plain.true_positives, plain.precision, plain.mixed_groups) == (PINNED_TP_NO_VIEWS, 1.0, 0)


@pytest.mark.slow  # five CLI processes
def test_pairs_collection_command_lays_out_a_built_dataset_and_refuses_an_unknown_one(tmp_path):
    import subprocess
    import sys

    src = tmp_path / "originals"
    src.mkdir()
    for name in ("coffee", "rocket"):
        photo(name, 128).save(src / f"{name}.png")
    data = str(tmp_path / "data")

    def maya(*args):
        return subprocess.run([sys.executable, "-c", "import sys; from maya.cli import main; sys.exit(main())", *args,
                               "--data-dir", data], capture_output=True, text=True)

    out = maya("pairs", "build", str(src), "--dataset", "d", "--positives", "2", "--chains", "0", "--collection")
    assert out.returncode == 0, out.stderr
    assert "collection 'd': 6 files (2 originals" in out.stdout
    assert len(list((tmp_path / "data" / "collections" / "d").rglob("*.*"))) == 6
    out = maya("pairs", "collection", "--dataset", "d")
    assert out.returncode == 2 and "exists" in out.stderr
    assert maya("pairs", "collection", "--dataset", "d", "--replace").returncode == 0
    out = maya("pairs", "collection", "--dataset", "nope")
    assert out.returncode == 2 and "unknown dataset" in out.stderr
    out = maya("sql", "SELECT kind, count(*) AS n FROM collection_files GROUP BY kind ORDER BY kind", "--format", "csv")
    assert out.returncode == 0 and "original,2" in out.stdout


#: Seed 0, mode phash, the five photos above: 55 of 75 true pairs found, the largest group is all 6 files of
#: one photo. A change to the edits, pHash or grouping that moves these is a change to measure, not to absorb.
#: (35 with plain pHash; 44 once the radius search took all 8 flips/turns (dihedral pHash, issue 15); 55 with
#: the inner views, on by default. Precision stayed 1.0 at each step.)
PINNED_TP = 55
PINNED_TP_NO_VIEWS = 44
PINNED_LARGEST = 6


@pytest.mark.slow  # efficientnet-lite0 over 30 files, four dedup runs
def test_with_efficientnet_the_local_clause_finds_more_of_the_copies_at_precision_one(tmp_path):
    from maya.dedup.options import DedupOptions
    from maya.evaluation.collection import evaluate_collection

    db, _, _ = _five_photo_collection(tmp_path)
    nan = float("nan")
    found = {}
    for label, o in (("defaults", DedupOptions()),
                     ("no pHash vote", DedupOptions(phash_majority=False)),
                     ("no vote", DedupOptions(clip_majority=nan, clip_majority_margin=nan, phash_majority=False)),
                     ("neither", DedupOptions(clip_majority=nan, clip_majority_margin=nan, clip_local_floor=nan,
                                              clip_local_margin=nan, phash_majority=False))):
        r = evaluate_collection(db, "c", o, model="efficientnet-lite0", save=False)
        m = r.metrics
        assert (m.precision, m.mixed_groups, m.chained_groups) == (1.0, 0, 0), label
        found[label] = m.true_positives
    assert found == PINNED_EFFICIENTNET_TP
#: Seed 0, efficientnet-lite0, the five photos above (75 true pairs): true pairs found with the built-in defaults,
#: without the pHash vote, without either vote, and without the votes or the local clause; precision 1.0 in all four.
#: (On photos this far apart the vote has no left-out copy to attach; its gain is on look-alike originals, see the
#: README's collection benchmark, and its own test is in tests/test_dedup_recall.py.)
#: "neither" was 60 with the first inner-view detector; its successor (inner-v2, issue 15: a view needs an abrupt
#: edge) makes no view of a crop's flat background, and 5 of those pairs went with it. The local clause finds them.
#: "defaults" went 70 -> 75 (every true pair) with the pHash vote (issue 13, third round): the copies whose embedding
#: an edit wrecked but whose pHash is within the radius of most of their group's files join it; "no vote" and
#: "neither" turn both votes off. The pHash vote is on by default since smooth pictures cast none (see
#: test_dedup_recall's smooth pictures); "no pHash vote" is the defaults before that.
PINNED_EFFICIENTNET_TP = {"defaults": 75, "no pHash vote": 70, "no vote": 70, "neither": 55}
