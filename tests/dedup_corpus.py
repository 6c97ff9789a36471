"""A photo folder with known duplicates, built by code for the dedup tests (never downloaded).

``build_dedup_corpus(root)`` writes originals (scikit-image photos), light edits of them
(``maya.pairs.transforms``), byte-identical copies, unrelated photos and a few broken files, in
sub-folders, and returns the ground truth: ``Corpus.cluster[path] = original name`` for every
good file that belongs to a duplicate cluster (unrelated photos are their own singletons) and
``Corpus.bad[path] = expected reason``.

The light edits are kinds that keep pHash within 0-8 bits on these photos (measured: 0-2 bits for
most, text overlays up to 8), so pHash alone finds them all; crops (``with_crops=True``) are far in
pHash (2-24 bits) and need the embedding.
"""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from tests.conftest import PHOTO_NAMES, photo

ORIGINALS = PHOTO_NAMES[:6]  # astronaut, coffee, chelsea, rocket, motorcycle_left, camera
UNRELATED = PHOTO_NAMES[8:14]  # page, brick, grass, gravel, hubble_deep_field, ihc
LIGHT_KINDS = ("jpeg_quality", "resize_down", "webp", "grayscale", "brightness", "blur", "noise", "watermark")


@dataclass
class Corpus:
    root: Path
    cluster: dict[str, str] = field(default_factory=dict)  # path -> original name (good files)
    bad: dict[str, str] = field(default_factory=dict)  # path -> expected error reason
    exact: set[str] = field(default_factory=set)  # paths byte-identical to another file

    def true_pairs(self) -> set[frozenset[str]]:
        """Unordered pairs of files that are duplicates of each other."""
        by: dict[str, list[str]] = {}
        for p, c in self.cluster.items():
            by.setdefault(c, []).append(p)
        return {frozenset(pair) for members in by.values() for pair in combinations(sorted(members), 2)}


def predicted_pairs(report: dict) -> set[frozenset[str]]:
    """Unordered pairs of files put in one group by a dedup report."""
    return {frozenset(pair) for g in report["groups"]
            for pair in combinations(sorted(m["path"] for m in g["members"]), 2)}


def precision_recall(report: dict, corpus: Corpus) -> tuple[float, float]:
    pred, true = predicted_pairs(report), corpus.true_pairs()
    tp = len(pred & true)
    return (tp / len(pred) if pred else 1.0), (tp / len(true) if true else 1.0)


def build_dedup_corpus(root: Path, *, side: int = 256, seed: int = 0, edits_per_original: int = 2,
                       with_crops: bool = False, originals=ORIGINALS, unrelated=UNRELATED) -> Corpus:
    """Write the folder under ``root`` and return its ground truth (paths as ``str(root / ...)``)."""
    from maya.pairs import transforms

    root = Path(root)
    corpus = Corpus(root)
    rng = np.random.default_rng(seed)
    for sub in ("originals", "edits", "copies", "unrelated", "broken"):
        (root / sub).mkdir(parents=True, exist_ok=True)

    def put(rel: str, data: bytes, cluster: str | None) -> str:
        path = root / rel
        path.write_bytes(data)
        if cluster is not None:
            corpus.cluster[str(path)] = cluster
        return str(path)

    first_edit = None
    for k, name in enumerate(originals):
        img = photo(name, side)
        buf = io.BytesIO()
        img.save(buf, "PNG")
        put(f"originals/{name}.png", buf.getvalue(), name)
        kinds = [LIGHT_KINDS[(k * edits_per_original + j) % len(LIGHT_KINDS)] for j in range(edits_per_original)]
        for kind in kinds:
            v = transforms.make_variant(img, kind, rng, "light")
            path = put(f"edits/{name}_{kind}.{v.ext}", v.data, name)
            first_edit = first_edit or path
        if with_crops:
            v = transforms.make_variant(img, "crop_center", rng, "medium")
            put(f"edits/{name}_crop.{v.ext}", v.data, name)
    # byte-identical copies: two originals and one edit, made a minute later (the older file is kept)
    for src in [root / "originals" / f"{originals[0]}.png", root / "originals" / f"{originals[1]}.png",
                Path(first_edit)]:
        dst = root / "copies" / f"copy_of_{src.name}"
        shutil.copyfile(src, dst)
        later = src.stat().st_mtime + 60
        os.utime(dst, (later, later))
        corpus.cluster[str(dst)] = corpus.cluster[str(src)]
        corpus.exact |= {str(src), str(dst)}
    for name in unrelated:
        img = photo(name, side)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        put(f"unrelated/{name}.jpg", buf.getvalue(), f"unrelated:{name}")
    # broken files
    jpeg = io.BytesIO()
    photo(originals[-1], side).save(jpeg, "JPEG", quality=90)
    corpus.bad[put("broken/truncated.jpg", jpeg.getvalue()[: len(jpeg.getvalue()) * 2 // 5], None)] = "truncated"
    corpus.bad[put("broken/notes.png", b"shopping list: eggs, milk\n" * 10, None)] = "not_an_image"
    corpus.bad[put("broken/empty.jpg", b"", None)] = "empty"
    return corpus
