"""The `maya` command: argparse commands, thin (parse, call the library or a flow, print).

``main`` imports :mod:`maya.cli.app` when called, so ``python -m maya.cli.dedup`` (or ``.orchestration``)
loads only its own modules.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """The ``maya`` console script: parse ``argv`` (default ``sys.argv[1:]``), run, return the exit status."""
    from maya.cli.app import main as app_main

    return app_main(argv)


__all__ = ["main"]
