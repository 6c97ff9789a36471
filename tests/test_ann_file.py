"""The faiss index kept next to the embeddings part (maya.index.ann_file): saved once, loaded after, grown by
appending, rebuilt when it no longer describes the part. Small seeded data, real files, real faiss."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faiss")

from maya.embedding import ann  # noqa: E402
from maya.index import ann_file  # noqa: E402
from maya.index.collection import IndexPart  # noqa: E402


def _part(n, d=32, seed=0, key="model/x"):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, d)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    shas = np.array([f"{seed:08x}{i:056x}" for i in range(n)], dtype="S64")
    return IndexPart("embeddings", key, shas, v, (n, n - 1))


def _grown(part, extra, seed=9):
    more = _part(extra, part.values.shape[1], seed=seed, key=part.key)
    return IndexPart("embeddings", part.key, np.concatenate([part.sha256, more.sha256]),
                     np.concatenate([part.values, more.values]), (len(part) + extra, len(part) + extra - 1))


def _answers(index, base, queries, k=5):
    """(positions, similarities) of the k nearest rows of ``base`` to each query, through ``index``."""
    return ann.query_topk(base, queries, k, method="ivf", index=index)


def test_a_saved_index_is_loaded_and_answers_exactly_as_the_one_built(tmp_path):
    part = _part(2000)
    path = tmp_path / "index" / "ann-m.npz"
    built, how = ann_file.load_or_build(part, path)
    assert how == "built" and path.exists()
    assert path.stat().st_size < part.values.nbytes / 4  # codes only: the vectors are the part's own
    loaded, how = ann_file.load_or_build(part, path)
    assert how == "loaded"
    q = part.values[:200]
    for a, b in zip(_answers(built, part.values, q), _answers(loaded, part.values, q)):
        assert np.array_equal(a, b)
    assert (_answers(loaded, part.values, q)[0][:, 0] == np.arange(200)).all()  # each row finds itself first


def test_rows_appended_to_the_part_are_added_to_the_saved_index_and_found(tmp_path):
    part = _part(2000)
    path = tmp_path / "ann.npz"
    ann_file.load_or_build(part, path)
    grown = _grown(part, 300)
    index, how = ann_file.load_or_build(grown, path, write=False)
    assert how == "appended (+300)"
    got = _answers(index, grown.values, grown.values[2000:])[0][:, 0]
    assert (got == np.arange(2000, 2300)).mean() > 0.95
    assert ann_file.load_or_build(grown, path)[1] == "appended (+300)"  # written this time
    assert ann_file.load_or_build(grown, path)[1] == "loaded"


def test_dedup_hook_appends_only_to_a_kept_index_and_never_builds_one(tmp_path):
    part = _part(2000)
    path = tmp_path / "ann.npz"
    assert ann_file.append_if_kept(part, path) is None and not path.exists()
    ann_file.load_or_build(part, path)
    assert ann_file.append_if_kept(part, path) == "fresh"
    grown = _grown(part, 50)
    assert ann_file.append_if_kept(grown, path) == "appended (+50)"
    assert ann_file.load_or_build(grown, path)[1] == "loaded"
    far = _grown(part, ann_file.RETRAIN_GROWTH * 2000)  # too big for the cells trained: left for a rebuild
    assert ann_file.append_if_kept(far, path) is None
    assert ann_file.load_or_build(far, path, write=False)[1] == "built"


@pytest.mark.slow
@pytest.mark.parametrize("change", ["damaged", "reordered", "other model", "shrunk"])
def test_an_index_that_no_longer_describes_the_part_is_rebuilt(tmp_path, change):
    part = _part(2000)
    path = tmp_path / "ann.npz"
    ann_file.load_or_build(part, path)
    if change == "damaged":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif change == "reordered":
        order = np.random.default_rng(1).permutation(len(part))
        part = IndexPart("embeddings", part.key, part.sha256[order], part.values[order], part.stamp)
    elif change == "other model":
        part = IndexPart("embeddings", "model/y", part.sha256, part.values, part.stamp)
    else:
        part = IndexPart("embeddings", part.key, part.sha256[:1500], part.values[:1500], (1500, 1499))
    index, how = ann_file.load_or_build(part, path)
    assert how == "built"
    assert (_answers(index, part.values, part.values[:100])[0][:, 0] == np.arange(100)).all()
    assert ann_file.load_or_build(part, path)[1] == "loaded"
