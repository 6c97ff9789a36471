"""What every command shares: the common parent parsers (``--data-dir``, model and flow options) and
the settings a command's flags resolve to (flags > env ``MAYA_*`` > defaults, see :mod:`maya.settings`).

Imports nothing heavy: building the parser stays in milliseconds.
"""

from __future__ import annotations

import argparse

from maya.errors import MayaUsageError


class UsageError(MayaUsageError):
    """A problem with what the user asked for (exit 2, one line, no traceback)."""


_COMMON = [
    (("--data-dir",), dict(metavar="DIR", help="folder of the DuckDB file maya.duckdb and derived images "
                                               "(env MAYA_DATA_DIR, or data_dir in the config file; default ./maya-data)")),
    (("--debug",), dict(action="store_true", help="show tracebacks")),
    (("--verbose",), dict(action="store_true", help="show Prefect's own log lines")),
]
_MODEL = [
    (("--model",), dict(help="embedding model: hub id, local CLIP folder, or efficientnet-lite0 (env MAYA_MODEL, or "
                             "model in the config file; default openai/clip-vit-base-patch32)")),
    (("--device",), dict(help="cuda, cpu, mps (env MAYA_DEVICE; default: the best available)")),
    (("--precision",), dict(choices=["auto", "fp32", "fp16", "bf16"],
                            help="model precision (default auto: fp16 on CUDA, fp32 on CPU)")),
    (("--batch-size",), dict(type=int, help="images per model batch (default: chosen by device)")),
]
#: Options accepted before the command too (``maya --data-dir X demo``): stored as ``global_<dest>`` and
#: copied onto the command's own when that one was not given.
_GLOBAL = _COMMON + _MODEL


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """The common and model options on the top-level parser (before the command)."""
    g = parser.add_argument_group("global options (also accepted after the command)")
    for flags, kw in _GLOBAL:
        dest = flags[0].lstrip("-").replace("-", "_")
        extra = {} if "metavar" in kw or "choices" in kw or "action" in kw else {"metavar": dest.upper()}
        g.add_argument(*flags, **{**kw, **extra, "dest": "global_" + dest})


def apply_global_options(args) -> None:
    """Copy options given before the command onto the command's (the one after it wins)."""
    for flags, _ in _GLOBAL:
        dest = flags[0].lstrip("-").replace("-", "_")
        before = getattr(args, "global_" + dest, None)
        if before is not None and before is not False and getattr(args, dest, None) in (None, False):
            setattr(args, dest, before)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with ``(default: X)`` added to an option whose help does not already say its
    default and whose default is a value (not None, not a flag's False)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" not in text and "%(default)" not in text and not any(default is v for v in (None, False, argparse.SUPPRESS))
                and action.option_strings and not isinstance(default, list)):
            text += " (default: %(default)s)"
        return text


def finish_help(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and every sub-command parser under it :class:`HelpFormatter`, and a command without a
    description the line its ``help`` says, so ``maya CMD --help`` always says what CMD does."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if sub.description is None and helps.get(name):
                    sub.description = helps[name][:1].upper() + helps[name][1:] + "."
                finish_help(sub)


def common_parser() -> argparse.ArgumentParser:
    """``--data-dir``, ``--debug``, ``--verbose``: on every command."""
    common = argparse.ArgumentParser(add_help=False)
    for flags, kw in _COMMON:
        common.add_argument(*flags, **kw)
    return common


def model_parser() -> argparse.ArgumentParser:
    """``--model``, ``--device``, ``--precision``, ``--batch-size``: on commands that embed images."""
    model = argparse.ArgumentParser(add_help=False)
    for flags, kw in _MODEL:
        model.add_argument(*flags, **kw)
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
