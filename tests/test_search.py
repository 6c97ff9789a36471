"""maya search and the collection index: real photos, a real DuckDB store, index files on disk."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import PHOTO_NAMES, photo

COLLECTION = PHOTO_NAMES[:6]
OUTSIDERS = PHOTO_NAMES[8:12]  # page, brick, grass, gravel: not in the collection


def _collection(root: Path) -> Path:
    d = root / "collection"
    d.mkdir()
    for name in COLLECTION:
        photo(name, 256).save(d / f"{name}.png")
    return d


def _queries(root: Path) -> Path:
    """Edited copies of the collection's photos (resized, re-encoded JPEG, brightened) and outsiders."""
    from PIL import ImageEnhance

    q = root / "queries"
    q.mkdir()
    for name in COLLECTION[:3]:
        photo(name, 200).save(q / f"{name}-small.jpg", quality=80)
        ImageEnhance.Brightness(photo(name, 256)).enhance(1.1).save(q / f"{name}-bright.jpg", quality=90)
    for name in OUTSIDERS:
        photo(name, 256).save(q / f"{name}.jpg", quality=90)
    (q / "broken.jpg").write_bytes(b"not a jpeg at all")
    return q


def _matched(report: dict) -> dict[str, list[str]]:
    return {Path(q["path"]).name: [Path(m["path"]).name for m in q["matches"]] for q in report["queries"]}


def test_search_finds_the_original_of_each_edited_copy_and_nothing_for_outsiders(tmp_path):
    from maya import find_duplicates, search

    db = tmp_path / "data" / "maya.duckdb"
    collection = _collection(tmp_path)
    find_duplicates(collection, mode="phash", db_path=db)
    report = search(_queries(tmp_path), mode="phash", db_path=db)

    assert set(report) == {"queries", "errors"}
    got = _matched(report)
    for name in COLLECTION[:3]:
        assert got[f"{name}-small.jpg"][:1] == [f"{name}.png"]
        assert got[f"{name}-bright.jpg"][:1] == [f"{name}.png"]
    for name in OUTSIDERS:
        assert got[f"{name}.jpg"] == []
    m = report["queries"][0]["matches"][0]
    assert set(m) == {"path", "sha256", "phash_distance", "clip_similarity", "match"}
    assert m["match"] == "phash" and m["clip_similarity"] is None and 0 <= m["phash_distance"] <= 8
    assert [Path(e["path"]).name for e in report["errors"]] == ["broken.jpg"]


def test_search_reads_no_collection_image(tmp_path):
    """The collection's files may be gone: search answers from the store and the index alone."""
    import shutil

    from maya import find_duplicates, search

    db = tmp_path / "data" / "maya.duckdb"
    collection = _collection(tmp_path)
    find_duplicates(collection, mode="phash", db_path=db)
    queries = _queries(tmp_path)
    shutil.rmtree(collection)
    got = _matched(search(queries, mode="phash", db_path=db))
    assert got["coffee-small.jpg"][:1] == ["coffee.png"]


def test_dedup_writes_the_index_and_a_grown_folder_only_appends_to_it(tmp_path):
    import duckdb

    from maya import find_duplicates
    from maya.hashing import DEFAULT
    from maya.index.collection import index_dir, refresh

    db = tmp_path / "data" / "maya.duckdb"
    collection = _collection(tmp_path)
    find_duplicates(collection, mode="phash", db_path=db)
    files = list(index_dir(db).glob("hashes-*.npz"))
    assert len(files) == 1
    with duckdb.connect(str(db), read_only=True) as con:
        part = refresh(con, index_dir(db), "hashes", DEFAULT.name)
        assert part.how == "fresh" and len(part) == len(COLLECTION)
    photo(OUTSIDERS[0], 256).save(collection / "new.png")
    find_duplicates(collection, mode="phash", db_path=db)
    with duckdb.connect(str(db), read_only=True) as con:
        part = refresh(con, index_dir(db), "hashes", DEFAULT.name, write=False)
        assert part.how == "fresh" and len(part) == len(COLLECTION) + 1
        # the files' own pHashes (the inner views' hashes are rows of another algorithm id)
        bits = dict(con.execute("SELECT sha256, bits FROM hashes WHERE algorithm = ?", [DEFAULT.name]).fetchall())
    assert {s: int(b) for s, b in zip(part.shas(range(len(part))), part.values)} == {k: int(v) for k, v in bits.items()}


def test_a_damaged_or_stale_index_file_is_rebuilt_from_the_store(tmp_path):
    import duckdb

    from maya import find_duplicates
    from maya.hashing import DEFAULT
    from maya.index.collection import index_dir, refresh

    db = tmp_path / "data" / "maya.duckdb"
    find_duplicates(_collection(tmp_path), mode="phash", db_path=db)
    (path,) = index_dir(db).glob("hashes-*.npz")
    path.write_bytes(b"garbage")
    with duckdb.connect(str(db)) as con:
        algorithm = DEFAULT.name  # the files' own pHashes; inner views' hashes have ids of their own
        part = refresh(con, index_dir(db), "hashes", algorithm)
        assert part.how == "rebuilt" and len(part) == len(COLLECTION)
        assert refresh(con, index_dir(db), "hashes", algorithm).how == "fresh"
        # a truncated file (a zip whose end is gone, as after a full disk): rebuilt too
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        part = refresh(con, index_dir(db), "hashes", algorithm)
        assert part.how == "rebuilt" and len(part) == len(COLLECTION)
        # a forged file: a readable zip whose version field is not one number
        np.savez(path, version=np.array([1, 2]), key=np.array(algorithm), sha256=part.sha256, values=part.values,
                 stamp=np.array(part.stamp, dtype=np.int64))
        part = refresh(con, index_dir(db), "hashes", algorithm)
        assert part.how == "rebuilt" and len(part) == len(COLLECTION)
        # a row replaced behind the index's back (count the same, rowids moved): rebuilt, not appended
        sha = con.execute("SELECT sha256 FROM hashes WHERE algorithm = ? LIMIT 1", [algorithm]).fetchone()[0]
        con.execute("DELETE FROM hashes WHERE sha256 = ? AND algorithm = ?", [sha, algorithm])
        con.execute("INSERT INTO hashes (sha256, algorithm, bits) VALUES (?, ?, 1)", [sha, algorithm])
        part = refresh(con, index_dir(db), "hashes", algorithm)
        assert part.how == "rebuilt"
        assert int(part.values[part.shas(range(len(part))).index(sha)]) == 1


def test_search_cli_prints_json_and_a_table(tmp_path, capsys):
    from maya import find_duplicates
    from maya.cli.app import main

    data = tmp_path / "data"
    find_duplicates(_collection(tmp_path), mode="phash", db_path=data / "maya.duckdb")
    queries = _queries(tmp_path)
    assert main(["search", str(queries / "coffee-small.jpg"), "--mode", "phash", "--data-dir", str(data),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [Path(m["path"]).name for m in out["queries"][0]["matches"]] == ["coffee.png"]
    assert main(["search", str(queries), "--mode", "phash", "--data-dir", str(data), "--top", "1"]) == 0
    text = capsys.readouterr().out
    assert "match rule: pHash d <= 8" in text and "coffee.png" in text and "broken.jpg" in text


def test_search_without_a_collection_is_a_usage_error(tmp_path):
    from maya.cli.app import main

    (tmp_path / "q.png").write_bytes(b"")
    assert main(["search", str(tmp_path / "q.png"), "--data-dir", str(tmp_path / "nothing"), "--mode", "phash"]) == 2
    assert not (tmp_path / "nothing").exists()


@pytest.mark.slow
def test_hybrid_search_with_a_model_scores_similarity(tmp_path, tiny_clip_dir):
    from maya import find_duplicates, search

    db = tmp_path / "data" / "maya.duckdb"
    collection = _collection(tmp_path)
    find_duplicates(collection, model=str(tiny_clip_dir), db_path=db)
    report = search(_queries(tmp_path), model=str(tiny_clip_dir), db_path=db, top=3)
    first = {Path(q["path"]).name: q["matches"] for q in report["queries"]}["astronaut-small.jpg"][0]
    assert Path(first["path"]).name == "astronaut.png"
    assert first["clip_similarity"] is not None and -1.0 <= first["clip_similarity"] <= 1.0
    assert first["match"] in ("phash", "phash+clip", "clip")


def test_rows_added_to_the_store_are_appended_to_the_index_not_rebuilt(tmp_path):
    import duckdb

    from maya import store
    from maya.index.collection import refresh

    con = duckdb.connect(str(tmp_path / "maya.duckdb"))
    store.apply_schema(con)
    rng = np.random.default_rng(0)
    shas = [f"{i:064x}" for i in range(5)]
    bits = rng.integers(0, 2**63, 5, dtype=np.int64).astype(np.uint64)
    vecs = rng.standard_normal((5, 8)).astype(np.float32)
    store.insert_rows(con, "hashes", {"sha256": shas[:3], "algorithm": ["h"] * 3, "bits": bits[:3]})
    store.insert_embeddings(con, shas[:3], "m", vecs[:3])
    folder = tmp_path / "index"
    assert refresh(con, folder, "hashes", "h").how == "rebuilt"
    assert refresh(con, folder, "embeddings", "m").how == "rebuilt"
    store.insert_rows(con, "hashes", {"sha256": shas[3:], "algorithm": ["h"] * 2, "bits": bits[3:]})
    store.insert_embeddings(con, shas[3:], "m", vecs[3:])
    h = refresh(con, folder, "hashes", "h")
    e = refresh(con, folder, "embeddings", "m")
    assert (h.how, h.added, e.how, e.added) == ("appended", 2, "appended", 2)
    assert h.shas(range(5)) == shas and np.array_equal(h.values, bits)
    # embeddings keep the store's row order (one insert's rows may come in any order): compare by content
    got = dict(zip(e.shas(range(5)), e.values))
    assert sorted(got) == shas and all(np.allclose(got[s], v) for s, v in zip(shas, vecs))
    assert refresh(con, folder, "hashes", "h").how == "fresh"
    con.close()


def test_a_held_collection_lists_the_same_paths_as_asking_the_store_each_time(tmp_path):
    """keep_paths reads every content's paths once; its answers equal the per-call store query's, a content
    with two paths lists both, and a content whose only file is unreadable lists none."""
    import duckdb

    from maya import store
    from maya.dedup.options import DedupOptions
    from maya.index.collection import refresh
    from maya.index.search import Collection, QueryFeatures

    con = duckdb.connect(str(tmp_path / "maya.duckdb"))
    store.apply_schema(con)
    rng = np.random.default_rng(3)
    shas = [f"{i:064x}" for i in range(40)]
    bits = rng.integers(0, 2**63, 40, dtype=np.int64).astype(np.uint64)
    store.insert_rows(con, "hashes", {"sha256": shas, "algorithm": ["h"] * 40, "bits": bits})
    paths = [f"/p/{i:02d}.png" for i in range(40)] + ["/q/00-copy.png", "/q/01-broken.png"]
    owners = shas + [shas[0], shas[1]]
    status = ["ok"] * 40 + ["ok", "error"]
    status[2] = "error"  # content 2's only file is unreadable: not in the collection
    store.insert_rows(con, "files", {"path": paths, "sha256": owners, "status": status})
    options = DedupOptions("phash").check()
    part = refresh(con, None, "hashes", "h")
    held = Collection(con, options, None, part, keep_paths=True)
    asked = Collection(con, options, None, part, keep_paths=False)
    queries = QueryFeatures([f"/query/{i}" for i in range(40)], [f"q{i}" for i in range(40)], bits, None, [])
    for _ in range(2):  # the second call answers from the paths read by the first
        got = held.match(queries, top=5)
        assert got == asked.match(queries, top=5)
    by_query = {r["path"]: [m["path"] for m in r["matches"]] for r in got}
    assert by_query["/query/0"] == ["/p/00.png", "/q/00-copy.png"]
    assert by_query["/query/1"] == ["/p/01.png"]
    assert by_query["/query/2"] == []
    assert by_query["/query/7"] == ["/p/07.png"]
    con.close()


def test_a_collection_from_the_store_saves_its_faiss_index_dedup_appends_to_it_and_the_next_search_loads_it(tmp_path):
    pytest.importorskip("faiss")
    import duckdb

    from maya import store
    from maya.dedup.options import DedupOptions
    from maya.hashing import DEFAULT
    from maya.index.collection import index_dir, update_after_dedup
    from maya.index.search import Collection, QueryFeatures

    db = tmp_path / "maya.duckdb"
    con = duckdb.connect(str(db))
    store.apply_schema(con)
    rng = np.random.default_rng(5)
    n = 2000
    shas = [f"{i:064x}" for i in range(n)]
    bits = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    vecs = rng.standard_normal((n, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store.insert_rows(con, "hashes", {"sha256": shas, "algorithm": [DEFAULT.name] * n, "bits": bits})
    store.insert_embeddings(con, shas, "m", vecs)
    store.insert_rows(con, "files", {"path": [f"/p/{i}.png" for i in range(n)], "sha256": shas, "status": ["ok"] * n})
    options = DedupOptions("hybrid", 8, 16, 0.80, 0.90).check()  # thresholds given: no model to calibrate
    first = Collection.from_store(con, db, options, "m", neighbours="ivf")
    kept = [p.name for p in index_dir(db).iterdir() if p.name.startswith("ann-")]
    second = Collection.from_store(con, db, options, "m", neighbours="ivf")
    assert (first.ann_how, second.ann_how, len(kept)) == ("built", "loaded", 1)
    pos = np.arange(0, n, 97)
    q = QueryFeatures([f"/q/{i}" for i in pos], [f"q{i}" for i in pos], bits[pos], vecs[pos], [])
    a, b = first.match(q, top=1), second.match(q, top=1)
    assert a == b and [r["matches"][0]["path"] for r in a] == [f"/p/{i}.png" for i in pos]
    # dedup adds contents: its index hook adds them to the kept faiss index, and the next search only loads it
    more = [f"{i:064x}" for i in range(n, n + 30)]
    mvecs = rng.standard_normal((30, 32)).astype(np.float32)
    mvecs /= np.linalg.norm(mvecs, axis=1, keepdims=True)
    store.insert_embeddings(con, more, "m", mvecs)
    assert update_after_dedup(con, db, None, "m")["neighbours"] == "appended (+30)"
    assert Collection.from_store(con, db, options, "m", neighbours="ivf").ann_how == "loaded"
    con.close()
