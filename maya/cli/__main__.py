"""``python -m maya.cli``: the same as the ``maya`` command."""

import sys

from maya.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
