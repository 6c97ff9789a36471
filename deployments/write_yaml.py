"""Write ``deployments/prefect.yaml`` from the code's deployment definitions (maya/cli/deployments.py).

    python deployments/write_yaml.py           # rewrite the file
    python deployments/write_yaml.py --check   # exit 1 when the committed file differs from the code

The file is generated, never edited by hand: ``maya serve``, ``maya deploy`` and ``prefect deploy`` then
register the same two deployments.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maya.cli.deployments import render_prefect_yaml  # noqa: E402
from maya.io.atomic import write_atomically  # noqa: E402

TARGET = Path(__file__).resolve().parent / "prefect.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the file is out of date")
    args = parser.parse_args(argv)
    text = render_prefect_yaml()
    current = TARGET.read_text() if TARGET.exists() else None
    if args.check:
        if current != text:
            print(f"{TARGET} differs from maya/cli/deployments.py: run python deployments/write_yaml.py",
                  file=sys.stderr)
            return 1
        return 0
    if current != text:
        write_atomically(TARGET, text.encode())
        print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
