"""How a parsed command becomes an exit status: Maya's errors print one line and return the code they
carry (:mod:`maya.errors`: 1 failed, 2 usage); Ctrl-C is 130; a closed pipe (``maya sql ... | head``)
is success; anything else is one line plus a hint, or its traceback with ``--debug``."""

from __future__ import annotations

import os
import sys

from maya.errors import EXIT_FAILED, MayaError


def run_command(args) -> int:
    """Call ``args.func(args)`` (set by the sub-parser) and turn what happens into an exit status."""
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("maya: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `maya sql ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # noqa: BLE001 — one clear line for people, the traceback with --debug
        if getattr(args, "debug", False):
            raise
        # Maya's own errors carry their exit code; a ValueError raised by Maya's code is a message too
        known = isinstance(e, MayaError) or (isinstance(e, ValueError) and type(e).__module__.startswith("maya"))
        from maya.io.printable import printable_lines

        print(f"maya: error: {printable_lines(e)}", file=sys.stderr)
        if not known:
            print(f"maya: ({type(e).__name__}; rerun with --debug for the traceback)", file=sys.stderr)
        return e.exit_code if isinstance(e, MayaError) else EXIT_FAILED
