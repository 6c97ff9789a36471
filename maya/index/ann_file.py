"""The approximate-neighbour (faiss IVF) index of an embeddings part, kept on disk next to it.

Building the IVF index of a large collection is the slow step of a search (1M x 512: k-means training,
assigning and encoding every vector: minutes on 2 cores), while loading what it computed takes about a
second. So the first search of a large collection saves it, and later searches load it:

``<data dir>/index/ann-<model>-<digest>.npz`` (``maya.index.collection.part_path(folder, "ann", model)``) holds

* ``codes``: uint8, the serialized trained cells and 4-bit product codes (:func:`maya.embedding.ann.ivf_codes`;
  ~d/16 bytes a vector: 32 MB at 1M x 512). The exact vectors used to re-rank are not stored again: they are
  the embeddings part's own values, joined at load (:func:`maya.embedding.ann.ivf_from_codes`);
* ``rows``: how many of the part's rows the codes hold, ``prefix``: a SHA-1 of those rows' sha256 column,
  ``trained_on``: the part's size when the cells were trained, ``key``, ``version``.

It is derived, never a second source of truth: it is used only when it describes a prefix of the current
embeddings part (the same contents in the same order: the part only grows by appending,
:mod:`maya.index.collection`); the part's rows beyond the prefix are added to it (assigned to the trained
cells) and the file saved again. Anything else (no file, a damaged one, another model or layout, a part
rebuilt in another order, a part grown past :data:`RETRAIN_GROWTH` times the training size, so the cells are
too few for it) and it is built anew from the part. Files are replaced atomically; failing to write one
never fails a search.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from maya.index.damaged import DAMAGED

#: Layout version of the files; a file of another version is rebuilt.
ANN_VERSION = 1
#: A part grown beyond this many times the rows its cells were trained on is trained again.
RETRAIN_GROWTH = 4


def _prefix_digest(shas: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(shas, dtype="S64").tobytes()).hexdigest()


def _load(path: Path, part) -> tuple[np.ndarray, int, int] | None:
    """(codes, rows, trained_on) of a file that fits ``part``, else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != ANN_VERSION or str(z["key"]) != part.key:
                return None
            rows, trained_on = int(z["rows"]), int(z["trained_on"])
            if not 0 < rows <= len(part) or str(z["prefix"]) != _prefix_digest(part.sha256[:rows]):
                return None
            return z["codes"], rows, trained_on
    except DAMAGED:
        return None


def _save(path: Path, part, codes: np.ndarray, trained_on: int) -> None:
    from maya.io.atomic import atomic_file

    buf = io.BytesIO()
    np.savez(buf, version=np.int64(ANN_VERSION), key=np.array(part.key), codes=codes,
             rows=np.int64(len(part)), prefix=np.array(_prefix_digest(part.sha256)),
             trained_on=np.int64(trained_on))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as f:
        f.write(buf.getbuffer())


def load_or_build(part, path: str | os.PathLike | None, *, write: bool = True):
    """``(index, how)``: the faiss IVF index (:func:`maya.embedding.ann.build_ivf`, codes ``pq``) over the
    embeddings ``part`` (:class:`maya.index.collection.IndexPart`), and what was done: ``"loaded"``,
    ``"appended (+n)"``, ``"built"`` (each ``" (not saved)"`` when writing failed). ``path``: the file (see
    the module docstring; None: built, nothing kept); ``write``: save what changed."""
    from maya.embedding import ann

    path = Path(path) if path is not None else None
    got = _load(path, part) if path is not None and path.exists() else None
    index = None
    if got is not None and len(part) <= RETRAIN_GROWTH * got[2]:
        codes, rows, trained_on = got
        try:
            index = ann.ivf_from_codes(codes, part.values)
        except (ValueError, RuntimeError):  # faiss raises RuntimeError on a damaged stream
            index = None
        how = "loaded" if rows == len(part) else f"appended (+{len(part) - rows})"
    if index is None:
        index, how, trained_on = ann.build_ivf(part.values), "built", len(part)
    if path is not None and write and how != "loaded":
        try:
            _save(path, part, ann.ivf_codes(index), trained_on)
        except OSError:
            how += " (not saved)"
    return index, how


def append_if_kept(part, path: str | os.PathLike) -> str | None:
    """The hook of :func:`maya.index.collection.update_after_dedup`: when a kept neighbour index fits a
    prefix of ``part`` (grown by dedup), add the new rows to it and save it, so the next search only loads it.
    Anything else is left for the next search to rebuild (a dedup never trains one). Returns what was done
    (``"appended (+n)"``, ``"fresh"``), or None when there was nothing to update."""
    from maya.embedding import ann

    path = Path(path)
    got = _load(path, part) if path.exists() else None
    if got is None or len(part) > RETRAIN_GROWTH * got[2]:
        return None
    codes, rows, trained_on = got
    if rows == len(part):
        return "fresh"
    try:
        codes = ann.ivf_add_codes(codes, part.values[rows:])
    except (ValueError, RuntimeError):
        return None
    try:
        _save(path, part, codes, trained_on)
    except OSError:
        return None
    return f"appended (+{len(part) - rows})"
