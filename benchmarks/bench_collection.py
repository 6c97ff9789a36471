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
``--calibration`` = this study run, with issue 13's second-round defaults (local floor 0.50, no pHash vote), the
defaults before its local clause and votes, and before issue 13 (0.80 / 0.85, connected components). Prints the pair F1 (test split, selected cascade and clip) and, per
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


def breakdown(db_path: Path, dataset: str, result) -> list[tuple[str, int]]:
    """Where the true file pairs of ``dataset``'s collection go in the dedup run of ``result``: byte-identical,
    never a candidate pair, a candidate the rule rejects, or accepted; each split by whether the two files
    ended in one group (grouped without a direct match: through the kept file or the vote)."""
    from collections import Counter
    from itertools import combinations

    from maya import store
    from maya.dedup import candidates as cand
    from maya.dedup.options import DedupOptions

    con = store.connect(db_path)
    try:
        rows = con.execute("SELECT path, sha256, original FROM collection_files WHERE dataset = ?", [dataset]).fetchall()
        (params, model_id) = con.execute("SELECT parameters, model FROM runs WHERE run_id = ?",
                                         [result.dedup_run_id]).fetchone()
        group_of = dict(con.execute("SELECT path, group_id FROM dedup_members WHERE run_id = ?",
                                    [result.dedup_run_id]).fetchall())
        import json

        known = DedupOptions.__dataclass_fields__
        opts = {k: v for k, v in json.loads(params).items() if k in known}  # the run's options, as recorded
        nan = float("nan")
        opts = {k: (nan if v is None and k.startswith(("clip_local", "clip_majority")) else v) for k, v in opts.items()}
        options = DedupOptions(**{**opts, "prefer": tuple(opts.get("prefer", ()))})
        shas = sorted({s for _, s, _ in rows})
        images = cand.load_images(con, shas, model_id if options.uses_embeddings else None, views=options.views)
    finally:
        con.close()
    a, b = cand.candidate_pairs(images, options)
    pairs = cand.verify_pairs(images, a, b, options)
    index = {s: k for k, s in enumerate(images.sha256)}
    proposed = set(zip(a.tolist(), b.tolist()))
    accepted = set(zip(pairs.a.tolist(), pairs.b.tolist()))
    by_original: dict = {}
    for p, s, o in rows:
        by_original.setdefault(o, []).append((p, s))
    out: Counter = Counter()
    for files in by_original.values():
        for (p, s), (q, t) in combinations(files, 2):
            key = tuple(sorted((index[s], index[t]))) if s in index and t in index else None
            step = ("identical" if s == t else "not decodable" if key is None else "not candidate"
                    if key not in proposed else "rejected" if key not in accepted else "accepted")
            together = p in group_of and group_of.get(p) == group_of.get(q)
            out[f"{step}/{'grouped' if together else 'apart'}"] += 1
    return sorted(out.items())


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
    ap.add_argument("--breakdown", action="store_true",
                    help="say where the true pairs go: never candidates, rejected by the rule, lost by grouping")
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
        off = float("nan")
        before = DedupOptions(clip_verify=0.80, clip_strict=0.85, grouping="components", clip_local_floor=off,
                              clip_local_margin=off, grid_floor=off, grid_agree=off)  # the defaults until issue 13
        previous = DedupOptions(clip_verify=0.80, clip_strict=0.95, clip_veto=0.30, clip_local_floor=off,
                                clip_local_margin=off, clip_majority=off, clip_majority_margin=off, phash_majority=False,
                                grid_floor=off, grid_agree=off)
        round2 = DedupOptions(clip_local_floor=0.50, clip_local_margin=0.20, phash_majority=False, grid_floor=off,
                              grid_agree=off)  # issue 13 round 2
        for label, calibration, o in (("built-in defaults", None, DedupOptions()),
                                      ("defaults without the grid clause (--grid nan nan)", None,
                                       DedupOptions(grid_floor=off, grid_agree=off)),
                                      ("defaults + --phash-majority", None, DedupOptions(phash_majority=True)),
                                      ("round-2 defaults: local floor 0.50, no pHash vote", None, round2),
                                      ("--calibration this run", str(study["run_id"]), DedupOptions()),
                                      ("previous defaults: 0.80 / 0.95, star, no local clause or vote", None, previous),
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
            if args.breakdown:
                print("  where the true pairs go: " + ", ".join(f"{k} {v}" for k, v in breakdown(db, dataset, r)))
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
            print("sweep (star, 0.90 / 0.97; local floor, margin; majority, margin): precision recall F1 largest mixed")
            for floor, margin in ((off, off), (0.5, 0.15), (0.5, 0.2), (0.5, 0.25), (0.6, 0.2)):
                for vote, vote_margin in ((off, off), (0.6, 0.0), (0.6, 0.05), (0.7, 0.05), (0.8, 0.0)):
                    o = DedupOptions(clip_verify=0.90, clip_strict=0.97, clip_local_floor=floor, clip_local_margin=margin,
                                     clip_majority=vote, clip_majority_margin=vote_margin)
                    m = coll.evaluate_collection(db, dataset, o, model=args.model, save=False).metrics
                    print(f"  local {floor:.2f} {margin:.2f} vote {vote:.2f} {vote_margin:.2f}: {m.precision:.4f} "
                          f"{m.recall:.4f} {m.f1:.4f} {m.largest_group} {m.mixed_groups}", flush=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
