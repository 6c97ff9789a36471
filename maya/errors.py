"""Maya's one error base: every error a user can meet carries the exit code the CLI returns for it.

``MayaError`` (exit 1): something went wrong that is not the caller's wording (a locked or corrupt
database, an unreadable image, a report that cannot be built). ``MayaUsageError`` (exit 2): what was
asked for cannot be done as asked (an unknown dataset, a bad threshold, a model that cannot be loaded,
a forged manifest). The CLI prints ``str(e)`` as one line and returns ``e.exit_code``; it never looks
at type names. Classes keep their historical bases too (``ValueError``, ``RuntimeError``) so existing
``except ValueError`` code still catches them.
"""

from __future__ import annotations

EXIT_FAILED = 1
EXIT_USAGE = 2


class MayaError(Exception):
    """A failure Maya explains in one line; the CLI exits with :attr:`exit_code`."""

    exit_code = EXIT_FAILED


class MayaUsageError(MayaError):
    """What was asked for cannot be done as asked: exit 2."""

    exit_code = EXIT_USAGE


class ModelLoadError(MayaUsageError):
    """A model could not be loaded; the message names the model and what to do about it.

    Defined here rather than beside the loaders because every runtime's loader raises it
    (``maya.embedding.models``, ``maya.embedding.efficientnet``, ``maya.embedding.onnx_runtime``).
    """


def first_line(exc: object) -> str:
    """The first line of ``str(exc)``, or the exception's type name when that is empty: a cause for a one-line message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
