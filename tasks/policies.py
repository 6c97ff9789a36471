"""Retry conditions and cache keys shared by Maya's tasks."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np


def transient_only(task, task_run, state) -> bool:
    """Retry file-system and network hiccups; never errors that will not go away."""
    try:
        state.result()
    except (TimeoutError, ConnectionError, BlockingIOError, InterruptedError):
        return True
    except OSError as e:  # EIO, ESTALE, EAGAIN on network mounts; not "no such file"
        return not isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError))
    except Exception:
        return False
    return True


def _digest(obj, h) -> None:
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes() if a.dtype != object else pickle.dumps(a.tolist()))
    elif isinstance(obj, dict):
        for k in sorted(obj):
            h.update(repr(k).encode())
            _digest(obj[k], h)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}{len(obj)}".encode())
        for x in obj:
            _digest(x, h)
    else:
        h.update(repr(obj).encode())


def content_key(context, parameters: dict) -> str:
    """Cache key from the task's identity, its source code and the content of its inputs (numpy-aware:
    a view and its contiguous copy get one key; see shared/notes/prefect.md)."""
    import inspect

    h = hashlib.sha256()
    fn = context.task.fn
    h.update(fn.__qualname__.encode())
    try:
        h.update(inspect.getsource(fn).encode())
    except (OSError, TypeError):
        pass
    _digest(parameters, h)
    return f"{fn.__qualname__}-{h.hexdigest()}"
