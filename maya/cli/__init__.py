"""The `maya` command: argparse commands, thin (parse, call the library or a flow, print)."""

from maya.cli.app import main

__all__ = ["main"]
