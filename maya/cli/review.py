"""``maya review [--run ID] [--port P] [--no-browser] [--move-to DIR]``: review a dedup run in the browser,
and ``maya pairs import --from-review``: turn the decisions into a labelled dataset.

``maya review`` serves a page on 127.0.0.1 only, with a random token in the URL it prints; it runs until
Ctrl-C or SIGTERM and then exits 0. It never imports Prefect, torch or transformers.
"""

from __future__ import annotations

import argparse
import os
import sys


def add_review_parser(subparsers, parents) -> argparse.ArgumentParser:
    """Add the ``review`` sub-command to ``subparsers`` (``parents``: --data-dir, --debug, ...)."""
    r = subparsers.add_parser(
        "review", parents=list(parents),
        help="review a dedup run's groups in the browser: correct them, act on them, teach Maya",
        description="Serve a page on 127.0.0.1 (with a per-session token in the URL) showing the groups of a "
                    "dedup run riskiest first. Decisions (not a duplicate, keep this one instead, split here, "
                    "whole group is wrong, looks right) are stored in the table review_decisions as they are "
                    "made. The page can move the reviewed groups' duplicates, or replace them by links, after "
                    "a dry run, and undo that. `maya pairs import --from-review --dataset NAME` turns the "
                    "decisions into labelled pairs. Stop with Ctrl-C.")
    r.add_argument("--run", type=int, metavar="ID", help="dedup run id (default: the latest)")
    r.add_argument("--port", type=int, default=0, metavar="P", help="port on 127.0.0.1 (default: any free one)")
    r.add_argument("--no-browser", action="store_true", help="only print the URL; do not open a browser")
    r.add_argument("--move-to", metavar="DIR",
                   help="where files moved (or replaced by links) from the page go, their full path mirrored "
                        "(default: DATA_DIR/review-originals)")
    r.set_defaults(func=cmd_review)
    return r


def cmd_review(args) -> int:
    from maya.review.server import PortError, serve
    from maya.review.session import ReviewSession
    from maya.settings import load_settings

    if not 0 <= args.port <= 65535:
        raise PortError(f"--port must be 0..65535, got {args.port}")
    settings = load_settings(data_dir=getattr(args, "data_dir", None))
    move_to = args.move_to or os.path.join(str(settings.data_dir), "review-originals")
    if os.path.exists(move_to) and not os.path.isdir(move_to):
        raise PortError(f"--move-to {move_to} is a file, not a folder")
    session = ReviewSession(settings.db_path, args.run, move_to)

    def ready(url: str) -> None:
        groups = len(session.groups)
        print(f"maya review: dedup run {session.run_id}, {groups} group{'s' if groups != 1 else ''}", flush=True)
        print(f"open {url}", flush=True)
        print("(only this URL's token is let in; Ctrl-C stops)", flush=True)
        if not args.no_browser:
            import webbrowser

            webbrowser.open(url)

    serve(session, port=args.port, on_ready=ready)
    print(f"maya review: stopped; {_decisions_line(session)}", file=sys.stderr, flush=True)
    return 0


def _decisions_line(session) -> str:
    from maya.errors import MayaError

    try:
        n = session.decisions_in_force()
    except MayaError:
        return "decisions are in review_decisions"
    if not n:
        return "no decisions in force"
    return (f"{n} decision{'s' if n != 1 else ''} in force (table review_decisions); turn them into labelled "
            f"pairs with: maya pairs import --from-review --run {session.run_id} --dataset NAME")


def add_from_review_flags(parser: argparse.ArgumentParser) -> None:
    """The ``--from-review [--run ID]`` flags of ``maya pairs import``."""
    parser.add_argument("--from-review", action="store_true",
                        help="make the pairs from the review decisions of a dedup run (`maya review`) instead of a CSV")
    parser.add_argument("--run", type=int, metavar="ID", help="with --from-review: the dedup run (default: the latest)")


def cmd_pairs_import_review(args, con, report) -> int:
    """``maya pairs import --from-review``: ``con`` an open store, ``report(name, pairset)`` prints the result."""
    from maya import store
    from maya.errors import MayaUsageError
    from maya.pairs.review import KIND, pairs_from_review, review_source

    if not args.from_review:
        raise MayaUsageError("give a CSV file of labelled pairs, or --from-review")
    if args.csv:
        raise MayaUsageError("give a CSV or --from-review, not both")
    run_id, ps = pairs_from_review(con, args.run, seed=args.seed)
    store.save_pairset(con, args.dataset, origin="import", source=review_source(run_id), seed=args.seed,
                       params={"kind": KIND, "run_id": run_id}, pairset=ps, replace=args.replace)
    report(args.dataset, ps)
    return 0
