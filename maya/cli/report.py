"""``maya report [--run ID] [--out DIR]``: write a run's report page and list what was written.

Read-only: opens the store read-only and never imports Prefect, torch or transformers.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_report_parser(subparsers, common_parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``report`` command to ``subparsers`` (``common_parents``: --data-dir, --debug, ...)."""
    r = subparsers.add_parser(
        "report", parents=common_parents,
        help="write an HTML + Markdown report of an evaluate run (default: the latest completed one)",
        description="Write report.html (self-contained) and report.md with the summary table, the curves, "
                    "per-kind recall and the worst mistakes of a run, under <data-dir>/reports/run-<id>/.")
    r.add_argument("--run", type=int, metavar="ID",
                   help="run id (an evaluate or evaluate-repeats run; default: the latest completed evaluate run)")
    r.add_argument("--out", metavar="DIR", help="folder to write into (default: <data-dir>/reports/run-<id>)")
    r.set_defaults(func=cmd_report)
    return r


def cmd_report(args) -> int:
    from maya.report.study import write_report_files
    from maya.settings import load_settings

    settings = load_settings(data_dir=getattr(args, "data_dir", None))
    files = write_report_files(settings.db_path, run_id=args.run, out_dir=os.path.expanduser(args.out) if args.out else None)
    print(f"report of run {files.run_id}:")
    print(f"  {_shown(files.html)}")
    print(f"  {_shown(files.markdown)}")
    print(f"pictures ({len(files.pictures)}):")
    for p in files.pictures:
        print(f"  {_shown(p)}")
    if files.thumbnails:
        print(f"thumbnails: {len(files.thumbnails)} in {_shown(files.thumbnails[0].parent)}")
    return 0


def _shown(path: Path) -> str:
    """The path relative to the current folder when it lies below it (symlinks kept), else absolute."""
    from maya.io.printable import printable

    absolute = Path(os.path.abspath(path))
    try:
        return printable(absolute.relative_to(Path(os.path.abspath(Path.cwd()))))
    except ValueError:
        return printable(absolute)
