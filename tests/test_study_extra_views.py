"""The study takes dedup's fixed extra views (``extra_views``), from Python and as a Prefect flow parameter, so the
two can be compared with the same views (issue 15). Real photos, a real DuckDB, the tiny random CLIP."""

import inspect
import json

import numpy as np
import pytest

from maya.errors import MayaUsageError
from tests.conftest import photo


def test_an_unknown_extra_view_is_a_usage_error_before_anything_is_read(tmp_path):
    from maya.evaluation.study import run_study

    with pytest.raises(MayaUsageError, match="unknown extra views"):
        run_study("x", source=str(tmp_path / "nowhere"), data_dir=str(tmp_path), extra_views=["sideways"])
    assert not (tmp_path / "maya.duckdb").exists()


def test_the_evaluate_flow_takes_extra_views_as_dedup_does_and_hands_them_to_the_study():
    from maya.evaluation.study import run_study
    from maya.flows.dedup import dedup
    from maya.flows.evaluate import evaluate

    flow_params = inspect.signature(evaluate.fn).parameters
    assert "extra_views" in flow_params and "extra_views" in inspect.signature(dedup.fn).parameters
    assert flow_params["extra_views"].default is None
    assert "extra_views" in inspect.signature(run_study).parameters


@pytest.mark.slow
def test_the_study_with_the_centre_view_scores_each_pair_over_its_best_view_including_the_centre(
        tmp_path, tiny_clip_dir):
    from maya import store, views
    from maya.evaluation.study import run_study
    from maya.view_features import extra_ids

    src = tmp_path / "originals"
    src.mkdir()
    for name in ("coffee", "rocket", "astronaut"):
        photo(name, 256).save(src / f"{name}.png")
    summary = run_study("x", source=str(src), seed=0, model=str(tiny_clip_dir), data_dir=str(tmp_path / "data"),
                        pair_options={"positives_per_original": 3}, extra_views=["centre"])
    con = store.connect(tmp_path / "data" / "maya.duckdb", read_only=True)
    try:
        params = json.loads(con.execute("SELECT parameters FROM runs WHERE run_id = ?",
                                        [summary["run_id"]]).fetchone()[0])
        assert params["extra_views"] == ["centre"]
        pairs = con.execute("SELECT p.a, p.b, s.clip_similarity, s.views_similarity FROM scores s JOIN pairs p "
                            "ON p.dataset = s.dataset AND p.pair_id = s.pair_id WHERE s.run_id = ?",
                            [summary["run_id"]]).fetchall()
        shas = {x for a, b, *_ in pairs for x in (a, b)}
        hid, eid = extra_ids("centre", summary["model"])
        centre = store.load_embeddings(con, shas, eid)
        assert set(centre) == shas and set(store.load_hashes(con, shas, hid)) == shas  # every image's centre
        whole = store.load_embeddings(con, shas, summary["model"])
        inner = store.load_embeddings(con, shas, views.view_feature_id(summary["model"]))
    finally:
        con.close()
    raised = 0
    for a, b, sim, best in pairs:
        ea = [e for e in (whole[a], inner.get(a), centre[a]) if e is not None]
        eb = [e for e in (whole[b], inner.get(b), centre[b]) if e is not None]
        assert best == pytest.approx(max(float(np.dot(x, y)) for x in ea for y in eb), abs=1e-5)
        raised += best > sim + 1e-6
    assert raised > 0  # the centre view is compared: some pair's best view is not the whole images
