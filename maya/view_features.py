"""Features of second views (``maya.views``): detect each content's inner region once, then pHash and embed it.

Per content and detector version (``maya.views.ALGORITHM``) one ``views`` row says whether there is an inner
region and where (fractions of the oriented image); contents with one get a pHash (``hashes``, algorithm
``phash64-v2@inner-v2``) and, with a model, an embedding (``embeddings``, model ``<model id>@inner-v2``) of
the cropped region. All of it is cached by content: a second run detects and embeds nothing again.

The cost is what this adds to the plain features: the detection (:func:`maya.views.inner_box`, on the
feature loop's decode when it is given the boxes: ``maya.features.compute_missing(views=True)``), one more
decode (a reduced decode, as the feature loop's) of the contents that have a view, or that were not checked
yet, and one embedding per content that has a view; :func:`compute_views` returns both, with its wall time,
so the study and the benchmark report them.

Pairs of contents are scored on their best pair of views (:func:`best_pair_scores`): the least pHash
distance and the greatest similarity over (whole, whole), (view, whole), (whole, view), (view, view).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Sequence

import numpy as np

from maya import views

VIEW_COUNTS = ("views_checked", "views_found", "view_hashes_computed", "view_embeddings_computed", "views_decoded",
               "view_seconds")


def hash_id() -> str:
    """The algorithm id of the views' pHashes in ``hashes``."""
    from maya.hashing import DEFAULT

    return views.view_feature_id(DEFAULT.name)


def extra_ids(name: str, model_id: str | None) -> tuple[str, str | None]:
    """(hash algorithm id, model id or None) of the fixed extra view ``name`` (``maya.views.EXTRA_VIEWS``)."""
    from maya.hashing import DEFAULT

    version = views.EXTRA_VIEWS[name][0]
    return views.view_feature_id(DEFAULT.name, version), (views.view_feature_id(model_id, version)
                                                           if model_id else None)


def compute_extra_views(con, shas: Sequence[str], name: str, *, paths: Mapping[str, str] | None = None,
                        model=None, model_id: str | None = None, batch_size: int = 64,
                        max_pixels: int | None = None, workers: int | None = None) -> dict:
    """pHash and (with ``model``) embed the fixed extra view ``name`` (``maya.views.EXTRA_VIEWS``) of every
    content of ``shas`` that lacks it, cached by content like the inner views. Returns :data:`VIEW_COUNTS`."""
    from maya import features, store

    start = time.perf_counter()
    shas = list(dict.fromkeys(shas))
    box = views.EXTRA_VIEWS[name][1]
    hid, eid = extra_ids(name, model_id)
    have_h = store.load_hashes(con, shas, hid)
    have_e = set(store.load_embeddings(con, shas, eid)) if eid else set()
    todo = [s for s in shas if s not in have_h or (model is not None and s not in have_e)]
    path_of = dict(paths) if paths is not None else store.image_paths(con, todo)
    todo = [s for s in todo if s in path_of]
    embedder = features.get_embedder(model) if model is not None and todo else None
    min_side = max(features.DECODE_MIN_SIDE, getattr(embedder, "input_size", 0) or 0)
    counts = dict.fromkeys(VIEW_COUNTS, 0)
    counts["views_checked"] = counts["views_found"] = len(shas)
    with ThreadPoolExecutor(max_workers=workers or features.default_workers()) as pool:
        for lo in range(0, len(todo), batch_size):
            crops = [(s, views.crop(im, box)) for s, im in pool.map(
                lambda it: _load(it, min_side, max_pixels), [(s, path_of[s]) for s in todo[lo:lo + batch_size]])
                if im is not None]
            counts["views_decoded"] += len(crops)
            _hash_and_embed(con, crops, hid, eid, embedder, have_h, have_e, counts)
    counts["view_seconds"] = round(time.perf_counter() - start, 3)
    return counts


def stored_boxes(con, shas: Sequence[str]) -> dict[str, tuple | None]:
    """sha256 -> box (left, top, right, bottom fractions) or None (checked, no view), for checked contents."""
    _maya_q = {"sha256": np.array(sorted(set(shas)), dtype=object)}  # noqa: F841
    if len(_maya_q["sha256"]) == 0:
        return {}
    rows = con.execute(
        "SELECT v.sha256, v.box_left, v.box_top, v.box_right, v.box_bottom FROM views v JOIN _maya_q USING (sha256) "
        "WHERE v.view = ?", [views.ALGORITHM]).fetchall()
    return {s: (None if left is None else (left, top, right, bottom)) for s, left, top, right, bottom in rows}


def _load(item, min_side, max_pixels):
    from maya.io import images as imageio

    sha, path = item
    kw = {"min_side": min_side}
    if max_pixels:
        kw["max_pixels"] = max_pixels
    try:
        return sha, imageio.load_image(path, **kw).image
    except imageio.ImageLoadError:
        return sha, None  # the plain feature loop reports the file's problem


def compute_views(con, shas: Sequence[str], *, paths: Mapping[str, str] | None = None, model=None,
                  model_id: str | None = None, batch_size: int = 64, max_pixels: int | None = None,
                  workers: int | None = None, boxes: Mapping[str, tuple | None] | None = None) -> dict:
    """Detect, hash and (with ``model``, a ``maya.features.ModelSpec``) embed the inner views of ``shas`` that
    lack them; each batch in one transaction. ``boxes``: sha256 -> box or None already found on the feature
    loop's decode (``maya.features.FeatureOutcome.view_boxes``): stored, and those contents are not decoded
    again unless they have a view. Returns :data:`VIEW_COUNTS` (``view_seconds``: wall time)."""
    from maya import features, store

    start = time.perf_counter()
    shas = list(dict.fromkeys(shas))
    wanted = set(shas)
    found = {s: b for s, b in (boxes or {}).items() if s in wanted}
    boxes = stored_boxes(con, shas)
    given = [(s, b) for s, b in found.items() if s not in boxes]
    if given:
        with store.transaction(con):
            _insert_boxes(con, given)
        boxes.update(given)
    with_box = [s for s, b in boxes.items() if b is not None]
    have_h = store.load_hashes(con, with_box, hash_id())
    have_e = set(store.load_embeddings(con, with_box, views.view_feature_id(model_id))) if model_id else set()
    todo = [s for s in shas if s not in boxes or (boxes[s] is not None and (
        s not in have_h or (model is not None and s not in have_e)))]
    path_of = dict(paths) if paths is not None else store.image_paths(con, todo)
    todo = [s for s in todo if s in path_of]
    embedder = features.get_embedder(model) if model is not None and todo else None  # a cached rerun loads none
    min_side = max(features.DECODE_MIN_SIDE, getattr(embedder, "input_size", 0) or 0)
    counts = dict.fromkeys(VIEW_COUNTS, 0)
    counts["views_checked"] = len(shas)
    with ThreadPoolExecutor(max_workers=workers or features.default_workers()) as pool:
        for lo in range(0, len(todo), batch_size):
            loaded = list(pool.map(lambda it: _load(it, min_side, max_pixels),
                                   [(s, path_of[s]) for s in todo[lo:lo + batch_size]]))
            rows, crops = [], []
            counts["views_decoded"] += sum(image is not None for _, image in loaded)
            for sha, image in loaded:
                if image is None:
                    continue
                box = boxes[sha] if sha in boxes else views.inner_box(image)
                rows.append((sha, box))
                if box is not None:
                    crops.append((sha, views.crop(image, box)))
            new_rows = [(s, b) for s, b in rows if s not in boxes]
            _hash_and_embed(con, crops, hash_id(), views.view_feature_id(model_id), embedder, have_h, have_e, counts,
                            also=(lambda: _insert_boxes(con, new_rows)) if new_rows else None)
            boxes.update(new_rows)
    counts["views_found"] = sum(1 for s in shas if boxes.get(s) is not None)
    counts["view_seconds"] = round(time.perf_counter() - start, 3)
    return counts


def _hash_and_embed(con, crops, hid: str, eid: str | None, embedder, have_h: dict, have_e: set, counts: dict,
                    also=None) -> None:
    """pHash (as ``hid``) and embed (as ``eid``, with ``embedder``) the view crops ``(sha256, image)`` not yet
    in ``have_h`` / ``have_e``, stored in one transaction with whatever ``also()`` writes; ``have_h``,
    ``have_e`` and the ``view_*_computed`` counts are updated."""
    from maya import store
    from maya.hashing import phash

    h_new = [(s, im) for s, im in crops if s not in have_h]
    e_new = [(s, im) for s, im in crops if embedder is not None and s not in have_e]
    bits = phash.phash_bits([im for _, im in h_new])
    vecs = embedder.embed_tensor(embedder.preprocess([im for _, im in e_new])) if e_new else None
    with store.transaction(con):
        if also is not None:
            also()
        if h_new:
            store.insert_rows(con, "hashes", {"sha256": [s for s, _ in h_new], "algorithm": [hid] * len(h_new),
                                              "bits": bits}, ignore_conflicts=True)
        if e_new:
            store.insert_embeddings(con, [s for s, _ in e_new], eid, vecs)
    have_h.update({s: int(b) for (s, _), b in zip(h_new, bits)})
    have_e.update(s for s, _ in e_new)
    counts["view_hashes_computed"] += len(h_new)
    counts["view_embeddings_computed"] += len(e_new)


def _insert_boxes(con, rows: Sequence[tuple[str, tuple | None]]) -> None:
    """Store ``(sha256, box or None)`` rows in ``views`` (an existing row of a content is kept)."""
    from maya import store

    store.insert_rows(con, "views", {
        "sha256": [s for s, _ in rows], "view": [views.ALGORITHM] * len(rows),
        **{f"box_{side}": np.array([np.nan if b is None else b[k] for _, b in rows], dtype=np.float64)
           for k, side in enumerate(("left", "top", "right", "bottom"))}}, ignore_conflicts=True)


def record_cost(con, run_id: int, counts: dict) -> None:
    """Write what the views cost a run (``runs.view_embeddings``, ``views_found``, ``view_seconds``)."""
    con.execute("UPDATE runs SET view_embeddings = ?, views_found = ?, view_seconds = ? WHERE run_id = ?",
                [counts["view_embeddings_computed"], counts["views_found"], counts["view_seconds"], run_id])


def best_pair_scores(con, a: Sequence[str], b: Sequence[str], distance: np.ndarray, similarity: np.ndarray,
                     hashes: Mapping[str, int], embeddings: Mapping[str, np.ndarray],
                     model_id: str | None, extra_views: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Scores of content pairs ``(a[k], b[k])`` over their best pair of views: ``(distance, similarity)``.

    ``distance`` (P,) int64 bits (-1 unknown) and ``similarity`` (P,) float64 (NaN unknown) are the whole
    images' scores; ``hashes`` / ``embeddings`` the whole images' plain pHashes and unit embeddings. The
    result is the least distance and the greatest similarity over the view pairs that exist; unknown stays
    unknown. ``extra_views``: names of fixed extra views (``maya.views.EXTRA_VIEWS``, stored by
    :func:`compute_extra_views`) that count as views too."""
    from maya import store
    from maya.hashing import hamming

    shas = sorted(set(a) | set(b))
    ids = [(hash_id(), views.view_feature_id(model_id) if model_id else None)]
    ids += [extra_ids(name, model_id) for name in extra_views]
    vhs = [store.load_hashes(con, shas, hid) for hid, _ in ids]
    ves = [store.load_embeddings(con, shas, eid) if eid else {} for _, eid in ids]
    d = np.asarray(distance, dtype=np.int64).copy()
    s = np.asarray(similarity, dtype=np.float64).copy()
    for k, (x, y) in enumerate(zip(a, b)):
        if d[k] >= 0:
            hx = [h for h in (hashes.get(x), *(vh.get(x) for vh in vhs)) if h is not None]
            hy = [h for h in (hashes.get(y), *(vh.get(y) for vh in vhs)) if h is not None]
            d[k] = min(d[k], min(int(hamming(p, q)) for p in hx for q in hy))
        if not np.isnan(s[k]):
            ex = [e for e in (embeddings.get(x), *(ve.get(x) for ve in ves)) if e is not None]
            ey = [e for e in (embeddings.get(y), *(ve.get(y) for ve in ves)) if e is not None]
            s[k] = max(s[k], max(float(np.dot(p, q)) for p in ex for q in ey))
    return d, s
