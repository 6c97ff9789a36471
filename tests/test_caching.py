"""Both caches of the evaluate flow, against a real Prefect API, real photos, a tiny real CLIP and DuckDB.

Task level: pair generation and evaluation are skipped (state ``Cached``) on an unchanged rerun,
recomputed with ``refresh``, not trusted when derived images are gone, and not fooled by an edited source
folder. Content level: hashes and embeddings are never computed twice, and a fully cached rerun does not
even load the model. Plus the cache keys and retry conditions themselves.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import numpy as np
import pytest

from maya import store

POSITIVES = {"positives_per_original": 2, "chains_per_original": 1}


# ---------------------------------------------------------------------------------------------- keys


def test_code_digest_follows_the_source_file(tmp_path, monkeypatch):
    from maya.tasks.policies import code_digest

    (tmp_path / "maya_probe_mod.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = code_digest(["maya_probe_mod"])
    assert code_digest(["maya_probe_mod"]) == first
    (tmp_path / "maya_probe_mod.py").write_text("X = 2  # an edit\n")
    assert code_digest(["maya_probe_mod"]) != first
    assert code_digest(["no_such_module_here"]) != first


def test_path_fingerprint_sees_added_changed_and_removed_files(tmp_path):
    from maya.tasks.policies import path_fingerprint

    (tmp_path / "a.jpg").write_bytes(b"a" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.png").write_bytes(b"b" * 10)
    seen = {path_fingerprint(tmp_path)}
    (tmp_path / "c.jpg").write_bytes(b"c")
    seen.add(path_fingerprint(tmp_path))
    (tmp_path / "sub" / "b.png").write_bytes(b"b" * 11)
    seen.add(path_fingerprint(tmp_path))
    (tmp_path / "a.jpg").unlink()
    seen.add(path_fingerprint(tmp_path))
    assert len(seen) == 4
    assert path_fingerprint(tmp_path) == path_fingerprint(tmp_path)
    assert path_fingerprint(tmp_path / "gone") == "missing"


class _Ctx:  # what a cache_key_fn reads from Prefect's TaskRunContext
    def __init__(self, fn):
        self.task = type("T", (), {"fn": fn})()


def test_content_key_separates_tasks_and_unifies_numpy_views():
    from maya.tasks.policies import content_key_with

    def double(n):
        return 2 * n

    def triple(n):
        return 3 * n

    key = content_key_with(code=("maya.evaluation.selection",))
    assert key(_Ctx(double), {"n": 5}) != key(_Ctx(triple), {"n": 5})
    assert key(_Ctx(double), {"n": 5}) != key(_Ctx(double), {"n": 6})
    a = np.arange(20, dtype=np.float64)
    assert key(_Ctx(double), {"n": a[::2]}) == key(_Ctx(double), {"n": np.ascontiguousarray(a[::2])})
    assert key(_Ctx(double), {"n": a[::2]}) != key(_Ctx(double), {"n": a[::2].astype(np.float32)})
    # a parameter naming a folder keys on what is in it
    by_path = content_key_with(paths=("options.groups",))
    assert by_path(_Ctx(double), {"options": {"groups": "/nope/a"}}) != by_path(
        _Ctx(double), {"options": {"groups": "/nope/b"}})


@pytest.mark.slow
def test_equal_inputs_of_two_tasks_do_not_share_a_cache_entry(prefect_server, tmp_path):
    from prefect import flow, task

    from maya.tasks.policies import content_key_with

    key = content_key_with()

    @task(cache_key_fn=key, persist_result=True, result_storage=tmp_path)
    def double(n: int) -> int:
        return 2 * n

    @task(cache_key_fn=key, persist_result=True, result_storage=tmp_path)
    def triple(n: int) -> int:
        return 3 * n

    @flow
    def both():
        return double(5), triple(5), double(5, return_state=True).name

    assert both() == (10, 15, "Cached")


@pytest.mark.slow
def test_transient_io_errors_are_retried_and_missing_files_are_not(prefect_server):
    from prefect import flow, task

    from maya.tasks.policies import transient_only

    calls = {"eio": 0, "missing": 0}

    @task(retries=3, retry_delay_seconds=0, retry_condition_fn=transient_only)
    def flaky_read() -> str:
        calls["eio"] += 1
        if calls["eio"] < 3:
            raise OSError(errno.EIO, "Input/output error")
        return "read"

    @task(retries=3, retry_delay_seconds=0, retry_condition_fn=transient_only)
    def missing_read() -> str:
        calls["missing"] += 1
        raise FileNotFoundError(errno.ENOENT, "No such file", "/gone.jpg")

    @flow
    def reads():
        return flaky_read(), missing_read(return_state=True)

    value, state = reads()
    assert value == "read" and calls["eio"] == 3
    assert state.is_failed() and calls["missing"] == 1


# ---------------------------------------------------------------------------------------------- the flow


def _task_states(flow_run_id: str) -> dict[str, list[str]]:
    """Task name -> state names of the task runs of a flow run, read back through the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [flow_run_id]}))
    out: dict[str, list[str]] = {}
    for r in runs:
        out.setdefault(r.name.rsplit("-", 1)[0], []).append(r.state.name)
    return out


def _flow_run_id(data: Path, run_id: int) -> str:
    con = store.connect(data / "maya.duckdb", read_only=True)
    try:
        return con.execute("SELECT flow_run_id FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
    finally:
        con.close()


def _scores(data: Path, run_id: int):
    con = store.connect(data / "maya.duckdb", read_only=True)
    try:
        return con.execute("SELECT pair_id, phash_distance, clip_similarity FROM scores WHERE run_id = ? "
                           "ORDER BY pair_id", [run_id]).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def source_copy(photo_dir, tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("originals")
    for p in sorted(photo_dir.iterdir())[:5]:
        shutil.copy2(p, src / p.name)
    return src


@pytest.fixture(scope="module")
def two_runs(prefect_server, source_copy, tiny_clip_dir, tmp_path_factory):
    from maya.flows.evaluate import evaluate

    data = tmp_path_factory.mktemp("cache-data")
    kw = dict(dataset="c", source=str(source_copy), seed=1, model=str(tiny_clip_dir), data_dir=str(data),
              pair_options=POSITIVES, batch_size=8)
    first = evaluate(**kw)
    second = evaluate(**kw)
    return data, kw, first, second


@pytest.mark.slow
def test_unchanged_rerun_skips_cached_tasks_and_computes_nothing(two_runs):
    data, _, first, second = two_runs
    assert first["cache"] == {"pairs": "computed", "features": "computed", "evaluation": "computed",
                              "model_loaded": True}
    assert second["cache"] == {"pairs": "cached", "features": "stored", "evaluation": "cached",
                               "model_loaded": False}
    c = second["counts"]
    assert (c["hashes_computed"], c["embeddings_computed"], c["batches"]) == (0, 0, 0)
    assert c["hashes_reused"] == c["embeddings_reused"] == second["images"] == first["images"]
    assert second["model"] == first["model"]  # the id predicted without loading == the loaded model's id
    assert second["results"] == first["results"]
    assert _scores(data, second["run_id"]) == _scores(data, first["run_id"])
    # Prefect itself says so: the rerun's cached tasks finished in state Cached, without running
    states = _task_states(_flow_run_id(data, second["run_id"]))
    # evaluate-scores runs once per kind of scores: plain, dihedral pHash, best pair of views
    assert states.get("generate-pairs") == ["Cached"] and states.get("evaluate-scores") == ["Cached"] * 3
    assert "image-features" not in states
    first_states = _task_states(_flow_run_id(data, first["run_id"]))
    assert first_states.get("generate-pairs") == ["Completed"]
    assert first_states.get("image-features") and set(first_states["image-features"]) == {"Completed"}
    assert (data / "task-results").is_dir()


@pytest.mark.slow
def test_refresh_recomputes_cached_tasks_but_not_stored_features(two_runs):
    from maya.flows.evaluate import evaluate

    data, kw, first, _ = two_runs
    third = evaluate(**kw, refresh=True)
    assert third["cache"]["pairs"] == "computed" and third["cache"]["evaluation"] == "computed"
    assert third["counts"]["hashes_computed"] == 0 and third["counts"]["embeddings_computed"] == 0
    assert third["results"] == first["results"]
    states = _task_states(_flow_run_id(data, third["run_id"]))
    assert states.get("generate-pairs") == ["Completed"] and states.get("evaluate-scores") == ["Completed"] * 3


@pytest.mark.slow
def test_cached_pairs_are_not_trusted_when_derived_images_are_gone(two_runs):
    from maya.flows.evaluate import evaluate

    data, kw, first, _ = two_runs
    shutil.rmtree(data / "images")
    again = evaluate(**kw)
    assert again["cache"]["pairs"] == "computed"  # the cached PairSet pointed at files that are gone
    assert again["counts"]["images_failed"] == 0 and again["counts"]["hashes_computed"] == 0
    con = store.connect(data / "maya.duckdb", read_only=True)
    try:
        paths = store.image_paths(con, con.execute("SELECT b FROM pairs WHERE dataset='c'").fetchnumpy()["b"])
    finally:
        con.close()
    assert paths and all(Path(p).exists() for p in paths.values())
    assert _scores(data, again["run_id"]) == _scores(data, first["run_id"])


@pytest.mark.slow
def test_edited_source_folder_is_not_answered_from_the_cache(two_runs, photo_dir, tmp_path):
    from maya.flows.evaluate import evaluate
    from maya.pairs.build import PairsError

    data, kw, first, _ = two_runs
    src = tmp_path / "edited"
    shutil.copytree(kw["source"], src)
    kw = {**kw, "source": str(src), "dataset": "c2"}
    base = evaluate(**kw)
    assert base["cache"]["pairs"] == "computed"  # another folder: another key, even with equal files
    extra = sorted(p for p in photo_dir.iterdir() if not (src / p.name).exists())[0]
    shutil.copy2(extra, src / extra.name)
    with pytest.raises(PairsError, match="content has changed"):
        evaluate(**kw)
    rebuilt = evaluate(**kw, replace=True)
    # the refused run already built (and cached) the new folder's pairs; --replace stores them
    assert rebuilt["cache"]["pairs"] == "cached" and rebuilt["pairs"] > base["pairs"]
    assert rebuilt["counts"]["hashes_reused"] > 0  # the images seen before are not hashed again


@pytest.mark.slow
def test_predicted_model_id_matches_the_loaded_model(tiny_clip_dir):
    from maya.evaluation.study import predicted_model_id
    from maya import features
    from maya.embedding.models import EFFICIENTNET_NAME, load_embedder

    for name in (str(tiny_clip_dir), EFFICIENTNET_NAME):
        spec = features.ModelSpec(name, "cpu", "auto", None)
        assert predicted_model_id(spec) == load_embedder(name, device="cpu").model_id
    assert predicted_model_id(features.ModelSpec("/no/such/model/folder")) is None
