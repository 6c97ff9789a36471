"""Collection benchmark: the product's grouping F1 on a folder of photos and their hard edits, against the
pair F1 of the same study run, in one run.

    python benchmarks/bench_collection.py [--photos all|a|b] [--model efficientnet-lite0] [--positives 8]
                                          [--chains 2] [--tiles 1|2|4] [--seed 0] [--data-dir DIR] [--sweep]

Originals: scikit-image's bundled photos (``maya.sample_photos``); ``--photos a`` / ``b`` take the even /
odd ones of that list, so thresholds can be chosen on one half and reported on the other. Steps, all
library calls (no Prefect): build the pair dataset (``positives`` single edits and ``chains`` chains per
original, light/medium/strong; negatives) and run the study on it (``maya.evaluation.study.run_study``: pair
P/R/F1, thresholds chosen on val); lay out the collection (``maya.pairs.collection``: originals + every
edited copy as files); dedup it (``maya.evaluation.collection``) with the model's built-in defaults, with
``--calibration`` = this study run, and with the defaults before issue 13 (0.80 / 0.85, connected components). Prints the pair F1 (test split, selected cascade and clip) and, per
threshold source, the collection's pairwise precision / recall / F1, largest group and weakest kinds.
``--sweep`` also prints the grouping metrics over a grid of (clip_verify, clip_strict).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing


def originals(dest: Path, which: str, tiles: int) -> Path:
    """The originals: the photos of ``which``, whole (``tiles`` 1) or cut into 2 (left / right) or 4
    quadrants, each a distinct original (tiles of one photo share its colours and texture: hard negatives)."""
    from PIL import Image

    from maya.sample_photos import sample_photo_paths

    paths = sample_photo_paths()
    if which in ("a", "b"):
        paths = paths[0 if which == "a" else 1::2]
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for p in paths:
        if tiles == 1:
            shutil.copyfile(p, dest / p.name)
            continue
        with Image.open(p) as im:
            im = im.convert("RGB")
            w, h = im.size
            boxes = ([(0, 0, w // 2, h), (w // 2, 0, w, h)] if tiles == 2 else
                     [(x, y, x + w // 2, y + h // 2) for y in (0, h // 2) for x in (0, w // 2)])
            kept: list = []
            for k, box in enumerate(boxes):
                tile = im.crop(box)
                if _mirrors_a_tile(tile, kept):
                    print(f"  {p.stem}-t{k}: a flip/turn of another tile of {p.stem} (not a distinct original), left out")
                    continue
                kept.append(tile)
                tile.save(dest / f"{p.stem}-t{k}.png")
    return dest


def _mirrors_a_tile(tile, kept: list) -> bool:
    """Whether ``tile`` is a flip or quarter turn of one of ``kept`` (dihedral pHash within the accept band): the
    halves of a mirror-symmetric photo (the Shepp-Logan phantom, a chessboard) are copies of each other, so the
    truth would call a true mirror copy a false pair."""
    import numpy as np

    from maya.dedup.options import PHASH_ACCEPT
    from maya.hashing import dihedral

    if not kept:
        return False
    v = dihedral.dihedral_bits([tile] + kept)
    d, _ = dihedral.distance(np.repeat(v[:1], len(kept), axis=0), v[1:])
    return bool((d <= PHASH_ACCEPT).any())


def pair_f1(db_path: Path, run_id: int) -> dict[str, float]:
    from maya import store

    con = store.connect(db_path)
    try:
        rows = con.execute("SELECT method, f1 FROM metrics WHERE run_id = ? AND split = 'test' AND selected",
                           [run_id]).fetchall()
    finally:
        con.close()
    return dict(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", choices=("all", "a", "b"), default="all")
    ap.add_argument("--tiles", type=int, choices=(1, 2, 4), default=1,
                    help="cut each photo into this many distinct originals (more originals, harder negatives)")
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--positives", type=int, default=8)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", help="keep the store here (default: a temporary folder, removed)")
    ap.add_argument("--sweep", action="store_true")
    args = ap.parse_args(argv)

    from maya.dedup.options import DedupOptions
    from maya.evaluation import collection as coll
    from maya.evaluation.study import run_study
    from maya.pairs.collection import lay_out_collection
    from maya import store

    tmp = None if args.data_dir else tempfile.mkdtemp(prefix="maya-bench-collection-")
    data_dir = Path(args.data_dir or tmp)
    try:
        src = originals(data_dir / f"originals-{args.photos}-{args.tiles}", args.photos, args.tiles)
        dataset = f"bench-{args.photos}-t{args.tiles}-s{args.seed}"
        t0 = time.perf_counter()
        study = run_study(dataset, str(src), args.seed, model=args.model, data_dir=str(data_dir), replace=True,
                          pair_options={"positives_per_original": args.positives,
                                        "chains_per_original": args.chains})
        db = data_dir / "maya.duckdb"
        con = store.connect(db)
        try:
            c = lay_out_collection(con, dataset, data_dir / "collections" / dataset, replace=True)
        finally:
            con.close()
        f1s = pair_f1(db, study["run_id"])
        print(f"photos {args.photos}: {study['pairs']} pairs, evaluate run {study['run_id']} "
              f"({time.perf_counter() - t0:.0f} s); collection: {c.files} files of {c.originals} originals")
        print("pair F1 (test split, thresholds chosen on val): " +
              ", ".join(f"{m} {f:.4f}" for m, f in sorted(f1s.items())))
        before = DedupOptions(clip_verify=0.80, clip_strict=0.85, grouping="components")  # the defaults until issue 13
        for label, calibration, o in (("built-in defaults", None, DedupOptions()),
                                      ("--calibration this run", str(study["run_id"]), DedupOptions()),
                                      ("before issue 13: 0.80 / 0.85, components", None, before)):
            r = coll.evaluate_collection(db, dataset, o, model=args.model, calibration=calibration,
                                         pair_f1=f1s.get("cascade"))
            m = r.metrics
            print(f"grouping [{label}]: precision {m.precision:.4f} recall {m.recall:.4f} F1 {m.f1:.4f} "
                  f"(pair F1 cascade {f1s.get('cascade', float('nan')):.4f}); largest group {m.largest_group} "
                  f"(truth {m.largest_true_group}), mixed {m.mixed_groups}, chained {m.chained_groups}")
            print(f"  rule: {r.rule} (source: {r.rule_source})")
            weak = sorted((f / n, k) for k, (n, f) in m.kind_recall.items() if n)[:8]
            print("  weakest kinds: " + ", ".join(f"{k} {x:.2f}" for x, k in weak))
        if args.sweep:
            print("sweep (grouping, phash_accept, clip_verify, clip_strict): precision recall F1 largest mixed")
            for grouping in ("star", "components"):
                for accept in (4, 8):
                    for verify in (0.7, 0.8, 0.9):
                        for strict in (0.8, 0.85, 0.9, 0.93, 0.95):
                            if strict < verify:
                                continue
                            o = DedupOptions(phash_accept=accept, clip_verify=verify, clip_strict=strict,
                                             grouping=grouping)
                            m = coll.evaluate_collection(db, dataset, o, model=args.model, save=False).metrics
                            print(f"  {grouping:10s} {accept} {verify:.2f} {strict:.2f}: {m.precision:.4f} "
                                  f"{m.recall:.4f} {m.f1:.4f} {m.largest_group} {m.mixed_groups}", flush=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
