"""The cost and the gain of the extra views (issue 15), in one run: dedup of a hard collection with and without.

    python benchmarks/bench_views.py [--model efficientnet-lite0] [--mode hybrid] [--per-kind 1] [--seed 0]
                                     [--keep DIR] [--extra-views centre]

The collection is made from scikit-image's sample photos (``maya.sample_photos``): each original, plus for
every hard kind (``KINDS``: inside a screenshot or meme, quarter turn, mirror, 15 degree rotation, centre
and random crops, overlays, borders, a chain of three edits) ``--per-kind`` edited copies at level
"strong" made by ``maya.pairs.transforms``, drawn with ``--seed`` (0: the collection the defaults were
looked at on; other seeds draw other edits of the same photos, a held-out check). Three dedups run over the
same folder, each into a fresh DuckDB (so nothing is reused): ``views=False`` (the plain and dihedral pHash only), ``views=True`` without the rule's
grid clause (``--grid nan nan``: the defaults before it) and ``views=True`` (the defaults: inner views of
screenshots, memes and borders, and the grid clause for overlaid copies, ``maya.hashing.grid``); with ``--extra-views NAME`` a third run adds that
fixed extra view of every image (``maya.views.EXTRA_VIEWS``, e.g. ``centre``: the middle half of the area).

Prints one row per run: files, embeddings (whole images + views), embeddings per file, their ratio to the
plain run, wall seconds (of the whole dedup; of the views step), and the per-kind recall (a copy counts
when it is in the same group as its original) and the pair precision (pairs inside groups whose two files
come from the same original).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

KINDS = ("screenshot", "rotate_90", "hflip", "rotate_small", "crop_center", "crop_random", "shape_overlay",
         "text_overlay", "pad_border", "chain")


def make_collection(folder: Path, per_kind: int, seed: int = 0) -> dict[str, tuple[str, str]]:
    """Originals and their hard copies in ``folder``: path -> (original name, kind or "original")."""
    import numpy as np
    from PIL import Image

    from maya.pairs import transforms
    from maya.sample_photos import sample_photo_paths

    rng = np.random.default_rng(seed)
    truth = {}
    for src in sample_photo_paths():
        with Image.open(src) as im:
            im = im.convert("RGB")
        stem = src.stem
        path = folder / f"{stem}.png"
        im.save(path)
        truth[str(path)] = (stem, "original")
        for kind in KINDS:
            for k in range(per_kind):
                if kind == "chain":
                    v = transforms.make_chain(im, rng, "strong", length=3)
                else:
                    v = transforms.make_variant(im, kind, rng, level="strong")
                out = folder / f"{stem}__{kind}{k}.{v.ext}"
                out.write_bytes(v.data)
                truth[str(out)] = (stem, kind)
    return truth


def score(groups, truth) -> tuple[dict[str, float], float]:
    """(per-kind recall, pair precision) of dedup groups against ``truth``."""
    group_of = {}
    tp = fp = 0
    for g, group in enumerate(groups):
        paths = [m.path for m in group.members]
        for p in paths:
            group_of[p] = g
        for i in range(len(paths)):
            for j in range(i + 1, len(paths)):
                same = truth[paths[i]][0] == truth[paths[j]][0]
                tp += same
                fp += not same
    original_path = {name: p for p, (name, kind) in truth.items() if kind == "original"}
    hits, total = defaultdict(int), defaultdict(int)
    for p, (name, kind) in truth.items():
        if kind == "original":
            continue
        total[kind] += 1
        o = original_path[name]
        hits[kind] += int(p in group_of and group_of.get(o) == group_of[p])
    recall = {k: hits[k] / total[k] for k in total}
    return recall, (tp / (tp + fp) if tp + fp else 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--mode", default="hybrid", choices=("hybrid", "clip", "phash"))
    parser.add_argument("--per-kind", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="seed of the edits (0: the tuning draw)")
    parser.add_argument("--keep", type=Path, default=None, help="build the collection here and keep it")
    parser.add_argument("--extra-views", action="append", default=[], help="a third run with these extra views too")
    args = parser.parse_args()

    import duckdb

    from maya.dedup.options import DedupOptions
    from maya.dedup.pipeline import run_dedup

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp) / "photos"
        folder.mkdir(parents=True, exist_ok=True)
        truth = make_collection(folder, args.per_kind, args.seed)
        print(f"collection: {len(truth)} files in {folder}; mode {args.mode}, model {args.model}, seed {args.seed}")
        rows = []
        off = float("nan")
        configs = [(False, (), True), (True, (), False), (True, (), True)] + (
            [(True, tuple(args.extra_views), True)] if args.extra_views else [])
        for views, extra_views, grid in configs:
            db = Path(tmp) / f"views-{views}-{'-'.join(extra_views)}-{grid}.duckdb"
            t0 = time.perf_counter()
            grid_off = {} if grid else {"grid_floor": off, "grid_agree": off}
            run = run_dedup([str(folder)], DedupOptions(mode=args.mode, views=views, extra_views=extra_views, **grid_off),
                            model=None if args.mode == "phash" else args.model, db_path=db)
            wall = time.perf_counter() - t0
            con = duckdb.connect(str(db), read_only=True)
            try:
                extra, vsec = con.execute("SELECT coalesce(view_embeddings, 0), coalesce(view_seconds, 0) "
                                          "FROM runs WHERE run_id = ?", [run.run_id]).fetchone()
            finally:
                con.close()
            embeddings = run.counts.get("embeddings_computed", 0) + extra
            recall, precision = score(run.groups, truth)
            label = ("+".join(("inner",) * views + extra_views) or "off") + ("" if grid else ", no grid")
            rows.append((label, embeddings, wall, vsec, recall, precision))
        base = rows[0][1] or 1
        print(f"{'views':<18} {'embeddings':>10} {'per file':>8} {'ratio':>6} {'wall s':>7} {'views s':>7} "
              f"{'precision':>9}  per-kind recall")
        for views, emb, wall, vsec, recall, precision in rows:
            kinds = " ".join(f"{k}={recall[k]:.2f}" for k in KINDS if k in recall)
            print(f"{views:<18} {emb:>10} {emb / len(truth):>8.2f} {emb / base:>6.2f} {wall:>7.1f} {vsec:>7.1f} "
                  f"{precision:>9.3f}  {kinds}")


if __name__ == "__main__":
    main()
