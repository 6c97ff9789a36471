"""What every command shares: the common parent parsers (``--data-dir``, model and flow options) and
the settings a command's flags resolve to (flags > env ``MAYA_*`` > defaults, see :mod:`maya.settings`).

Imports nothing heavy: building the parser stays in milliseconds.
"""

from __future__ import annotations

import argparse

from maya.errors import MayaUsageError


class UsageError(MayaUsageError):
    """A problem with what the user asked for (exit 2, one line, no traceback)."""


def common_parser() -> argparse.ArgumentParser:
    """``--data-dir``, ``--debug``, ``--verbose``: on every command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="folder of the DuckDB file and derived images (env MAYA_DATA_DIR; default ./maya-data)")
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    common.add_argument("--verbose", action="store_true", help="show Prefect's own log lines")
    return common


def model_parser() -> argparse.ArgumentParser:
    """``--model``, ``--device``, ``--precision``, ``--batch-size``: on commands that embed images."""
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", help="hub id, local CLIP folder, or efficientnet-lite0 (env MAYA_MODEL)")
    model.add_argument("--device", help="cuda, cpu, mps (default: best available; env MAYA_DEVICE)")
    model.add_argument("--precision", choices=["auto", "fp32", "fp16", "bf16"], help="default auto: fp16 on CUDA, fp32 on CPU")
    model.add_argument("--batch-size", type=int, help="images per model batch (default: by device)")
    return model


def flow_parser() -> argparse.ArgumentParser:
    """``--refresh``, ``--dask-address``: on the study's commands (they run the evaluate flow)."""
    flowopts = argparse.ArgumentParser(add_help=False)
    flowopts.add_argument("--refresh", action="store_true",
                          help="recompute Prefect-cached tasks (pairs, evaluation); stored hashes and embeddings "
                               "are still reused")
    flowopts.add_argument("--dask-address", metavar="ADDR",
                          help="run compute tasks on a Dask cluster: tcp://HOST:PORT, or 'local' for a temporary "
                               "local cluster (default: threads in this process)")
    return flowopts


def settings_from_args(args):
    """The :class:`maya.settings.Settings` of parsed ``args`` (flags a command lacks count as not given)."""
    from maya.settings import load_settings

    return load_settings(
        data_dir=getattr(args, "data_dir", None), model=getattr(args, "model", None),
        device=getattr(args, "device", None), precision=getattr(args, "precision", None),
        batch_size=getattr(args, "batch_size", None),
    )
