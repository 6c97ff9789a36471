"""The one missing-feature loop (maya.features.compute_missing): dedup's and the study's policies, and the rule."""

import hashlib

import numpy as np
from PIL import Image

from maya import features, store
from maya.hashing import DEFAULT
from maya.dedup.options import DedupOptions
from maya.evaluation.metrics import decide
from maya.rule import Rule


def _photo(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(tmp_path):
    good = [_photo(tmp_path / f"p{k}.png", k) for k in range(3)]
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"not an image at all")
    gone = tmp_path / "gone.png"  # registered, then deleted: a problem of the path, not of the bytes
    paths = {_sha(p): str(p) for p in [*good, bad]}
    paths["f" * 64] = str(gone)
    return paths, _sha(bad)


def test_dedup_policy_stores_content_errors_without_paths_and_never_decodes_known_bad_content_again(tmp_path):
    paths, bad = _files(tmp_path)
    con = store.connect(tmp_path / "m.duckdb")
    first = features.compute_missing(con, list(paths), paths=paths, batch_size=2)
    assert first.problems[bad][0] == "not_an_image" and str(tmp_path) not in first.problems[bad][1]
    assert first.problems["f" * 64][0] == "missing"
    assert first.counts_of(("images", "hashes_computed", "decoded", "hashes_reused")) == {
        "images": 5, "hashes_computed": 3, "decoded": 5, "hashes_reused": 0}
    stored = store.failed_images(con, list(paths))
    assert set(stored) == {bad}  # the missing path is not remembered for its content
    assert str(tmp_path) not in stored[bad]
    again = features.compute_missing(con, list(paths), paths=paths, batch_size=2)
    assert again.counts["decoded"] == 1  # only the missing path is tried again
    assert again.counts["hashes_reused"] == 3 and again.problems[bad] == first.problems[bad]


def test_study_policy_keeps_records_as_written_and_retries_only_what_may_change(tmp_path):
    paths, bad = _files(tmp_path)
    con = store.connect(tmp_path / "m.duckdb")
    first = features.compute_missing(con, list(paths), paths=paths, batch_size=2, policy=features.STUDY_POLICY)
    stored = store.failed_images(con, list(paths))
    assert set(stored) == {bad, "f" * 64} and str(tmp_path) in stored["f" * 64]  # as the decoder wrote it
    assert first.counts["images_failed"] == 2 and first.counts["batches"] == 3
    again = features.compute_missing(con, list(paths), paths=paths, batch_size=2, policy=features.STUDY_POLICY)
    assert again.counts["decoded"] == 1 and again.counts["hashes_reused"] == 3  # missing: retried; not_an_image: not
    refresh = features.compute_missing(con, list(paths), paths=paths, policy=features.STUDY_POLICY, retry_failed=True)
    assert refresh.counts["decoded"] == 2 and refresh.counts["hashes_computed"] == 0


def test_the_study_rule_and_every_dedup_mode_are_settings_of_one_rule():
    rng = np.random.default_rng(0)
    d = rng.integers(-1, 65, 2000)
    s = np.where(rng.random(2000) < 0.1, np.nan, rng.uniform(-1, 1, 2000))
    for ta, tr, tc in [(-1, 64, 0.5), (5, 20, 0.9), (10, 10, np.inf), (3, 3, 0.0)]:
        want = (d >= 0) & ((d <= ta) | ((d > ta) & (d <= tr) & (s >= tc)))
        assert (decide(d, s, ta, tr, tc) == want).all()
        assert (Rule(ta, tr, tc).clauses(d, s) != "").tolist() == want.tolist()
    d, s = np.abs(d), np.nan_to_num(s)
    hybrid = DedupOptions(mode="hybrid", phash_accept=6, phash_radius=14, clip_verify=0.6, clip_strict=0.9)
    rule = hybrid.rule.clauses(d, s)
    assert (rule == "phash").tolist() == (d <= 6).tolist()
    assert (rule == "phash+clip").tolist() == ((d > 6) & (d <= 14) & (s >= 0.6)).tolist()
    assert (rule == "clip").tolist() == (((d > 14) | (s < 0.6)) & (d > 6) & (s >= 0.9)).tolist()
    clip = DedupOptions(mode="clip", clip_strict=0.9).rule.clauses(d, s)
    assert set(clip.tolist()) <= {"", "clip"} and (clip == "clip").tolist() == (s >= 0.9).tolist()


def test_small_batches_are_written_together_and_an_interrupted_loop_keeps_what_finished(tmp_path, monkeypatch):
    from concurrent.futures import Future

    paths = {_sha(p): str(p) for p in (_photo(tmp_path / f"q{k}.png", 10 + k) for k in range(7))}
    shas = list(paths)
    con = store.connect(tmp_path / "m.duckdb")
    commits = []
    transaction = store.transaction

    def counting(c):  # the loop's transactions, each still the real one
        commits.append(1)
        return transaction(c)

    monkeypatch.setattr(store, "transaction", counting)
    out = features.compute_missing(con, shas[:5], paths=paths, batch_size=1, write_rows=3)
    assert out.counts["batches"] == 5 and out.counts["hashes_computed"] == 5
    assert len(commits) == 2  # 3 + 2 contents, not one transaction per 1-image batch
    assert len(store.load_hashes(con, shas, DEFAULT.name)) == 5
    monkeypatch.undo()

    calls = []

    def failing(items, *rest):  # the third batch fails: the two before it are still written
        calls.append(items)
        f = Future()
        if len(calls) == 3:
            f.set_exception(OSError("disk went away"))
        else:
            f.set_result(features.compute_batch(items, *rest))
        return f

    con.execute("DELETE FROM hashes")
    try:
        features.compute_missing(con, shas, paths=paths, batch_size=2, write_rows=100, submit=failing, in_flight=1)
    except OSError:
        pass
    else:
        raise AssertionError("the failed batch should have been raised")
    assert len(store.load_hashes(con, shas, DEFAULT.name)) == 4


def test_write_rows_comes_from_maya_write_rows_and_a_bad_value_is_a_clear_error(monkeypatch):
    import pytest

    from maya.settings import ConfigError

    monkeypatch.delenv("MAYA_WRITE_ROWS", raising=False)
    assert features.write_rows_setting() == features.WRITE_ROWS == 128
    monkeypatch.setenv("MAYA_WRITE_ROWS", "1")
    assert features.write_rows_setting() == 1
    for bad in ("0", "-3", "many"):
        monkeypatch.setenv("MAYA_WRITE_ROWS", bad)
        with pytest.raises(ConfigError, match="MAYA_WRITE_ROWS must be a positive integer"):
            features.write_rows_setting()


def test_stored_variants_are_the_contents_load_variants_returns(tmp_path):
    from maya.store import variants as variant_store

    con = store.connect(tmp_path / "m.duckdb")
    bits = np.arange(16, dtype=np.uint64).reshape(2, 8)
    variant_store.save_variants(con, ["a" * 64, "b" * 64], "dihedral-test", bits)
    con.execute("DELETE FROM hash_variants WHERE sha256 = ? AND variant = 3", ["b" * 64])  # one variant lost
    shas = ["a" * 64, "b" * 64, "c" * 64]
    assert variant_store.stored(con, shas, "dihedral-test") == set(variant_store.load_variants(con, shas, "dihedral-test"))
    assert variant_store.stored(con, shas, "dihedral-test") == {"a" * 64}
    assert variant_store.stored(con, [], "dihedral-test") == set()


def test_variant_matrix_is_load_variants_in_order_or_none_when_one_lacks_a_variant(tmp_path):
    from maya.store import variants as variant_store

    con = store.connect(tmp_path / "m.duckdb")
    bits = (np.arange(24, dtype=np.uint64) * np.uint64(2**61 + 7)).reshape(3, 8)  # high bits set too
    shas = ["a" * 64, "b" * 64, "c" * 64]
    variant_store.save_variants(con, shas, "dihedral-test", bits)
    order = [shas[2], shas[0], shas[1]]
    by = variant_store.load_variants(con, order, "dihedral-test")
    got = variant_store.variant_matrix(con, order, "dihedral-test")
    assert got.dtype == np.uint64 and (got == np.stack([by[s] for s in order])).all() and (got[0] == bits[2]).all()
    assert variant_store.variant_matrix(con, [*order, "d" * 64], "dihedral-test") is None  # one has none
    con.execute("DELETE FROM hash_variants WHERE sha256 = ? AND variant = 5", [shas[1]])
    assert variant_store.variant_matrix(con, order, "dihedral-test") is None  # one lost a variant
    assert variant_store.variant_matrix(con, [], "dihedral-test") is None
