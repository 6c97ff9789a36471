"""``maya search IMAGE|DIR ...``: near-duplicates of query images in the collection an earlier ``maya dedup``
indexed (same data folder). Only the query images are read; the library part is :mod:`maya.index.search`.

Hooked into ``maya.cli.app`` with ``add_search_parser(subparsers, [common, model])``. The threshold flags are
dedup's own (copied from its parser, so the two commands never disagree on a flag or a default).
"""

from __future__ import annotations

import argparse
import json
import sys

from maya.cli.options import settings_from_args as _settings

#: Dedup flags that make no sense for a search (they shape groups, not matches).
_NOT_FOR_SEARCH = {"--split-chains", "--grouping", "--no-views", "--extra-views", "--phash-majority",
                   "--no-phash-majority",
                   "--grid"}  # about groups and views (and the grid clause, which needs stored thumbnails), not one query


def _threshold_group(parser: argparse.ArgumentParser) -> None:
    """Copy the ``thresholds`` group of ``maya dedup`` onto ``parser``."""
    from maya.cli.dedup import add_dedup_parser

    scratch = argparse.ArgumentParser(add_help=False).add_subparsers()
    dedup = add_dedup_parser(scratch, [])
    for group in dedup._action_groups:
        if group.title and group.title.startswith("thresholds"):
            mine = parser.add_argument_group(group.title)
            for action in group._group_actions:
                if not set(action.option_strings) & _NOT_FOR_SEARCH:
                    mine._add_action(action)


def add_search_parser(subparsers, common_parents) -> argparse.ArgumentParser:
    """Add the ``search`` sub-command to ``subparsers``; returns its parser."""
    from maya import dedup as lib
    from maya.index.search import DEFAULT_TOP

    p = subparsers.add_parser(
        "search", parents=list(common_parents),
        help="find near-duplicates of images in a collection indexed by maya dedup",
        description="For each IMAGE (or each image under DIR), list its near-duplicates among the files earlier "
                    "`maya dedup` runs of this data folder saw, with pHash distance, similarity and the clause "
                    "of the rule that matched. Only the query images are read.",
    )
    p.add_argument("queries", nargs="+", metavar="IMAGE|DIR", help="query images or folders of them")
    p.add_argument("--mode", choices=lib.MODES, default="hybrid", help="as in maya dedup (default hybrid)")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, metavar="K",
                   help="most matches listed per query (default %(default)s)")
    p.add_argument("--json", dest="json_path", nargs="?", const="-", metavar="PATH",
                   help="write the result as JSON to PATH (no PATH or '-': stdout; default: a table on stdout)")
    p.add_argument("--max-pixels", type=int, metavar="N", help="largest declared width x height decoded (default: the settings' max_pixels)")
    _threshold_group(p)
    p.set_defaults(func=cmd_search)
    return p


def cmd_search(args) -> int:
    """Run ``maya search`` for parsed ``args``; 0 also when some query files were unusable."""
    from maya import dedup as lib
    from maya.index.search import run_search

    from maya.cli.dedup import phash_band

    accept, radius = phash_band(args)
    options = lib.DedupOptions(args.mode, accept, radius, args.clip_verify, args.clip_strict, args.clip_k,
                               clip_veto=args.clip_veto).check()
    s = _settings(args)
    run = run_search(args.queries, options=options, db_path=s.db_path, top=args.top,
                     model=s.model, device=s.device, precision=s.precision, batch_size=s.batch_size,
                     max_pixels=args.max_pixels or s.max_pixels, calibration=args.calibration)
    if args.json_path:
        text = json.dumps(run.report, indent=2, ensure_ascii=False)
        if args.json_path == "-":
            print(text)
        else:
            from maya.io.atomic import write_atomically

            write_atomically(args.json_path, (text + "\n").encode("utf-8"))
    if args.json_path != "-":
        print_table(run, out=sys.stdout)
    return 0


def print_table(run, *, out=None) -> None:
    """One block per query: its matches (distance, similarity, clause, path), then the unusable files."""
    from maya.io.ingest import path_text

    out = out or sys.stdout
    p = lambda *a: print(*a, file=out)  # noqa: E731
    o = run.options
    model = f", model {run.model_id}" if run.model_id else ""
    sizes = ", ".join(f"{n:,} {kind}" for kind, (n, _) in run.collection.items())
    p(f"search: mode {o.mode}{model}; collection: {sizes}")
    from maya.dedup.options import describe_rule

    rule = describe_rule(o)  # the one description of the rule, as dedup prints it
    p(f"match rule: {rule}")
    for q in run.report["queries"]:
        p(f"\n{path_text(q['path'])}: {len(q['matches'])} match{'es' if len(q['matches']) != 1 else ''}")
        for m in q["matches"]:
            sim = "-" if m["clip_similarity"] is None else f"{m['clip_similarity']:.3f}"
            p(f"  d={m['phash_distance']:>2}  sim={sim:>6}  {m['match']:<10}  match  {path_text(m['path'])}")
    if run.report["errors"]:
        p(f"\nunusable query files: {len(run.report['errors'])}")
        for e in run.report["errors"][:20]:
            p(f"  {path_text(e['path'])}: {e['error']}")
