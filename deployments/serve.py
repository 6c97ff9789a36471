"""Serve Maya's deployments from one process: ``python deployments/serve.py [maya serve options]``.

The same as ``maya serve``: registers ``evaluate/evaluate-on-demand`` (on demand) and
``dedup/dedup-nightly`` (cron, default 02:00 UTC) with the Prefect server named by ``PREFECT_API_URL``
and runs their flow runs until stopped (Ctrl-C or SIGTERM, which also pauses the deployments).
Folders of the nightly dedup: ``--dedup-folder DIR`` (repeatable) or ``MAYA_DEDUP_FOLDERS``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from maya.cli.orchestration import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
