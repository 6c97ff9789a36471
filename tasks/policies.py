"""Retry conditions and cache keys shared by Maya's tasks.

Cache keys (see shared/notes/prefect.md for why not Prefect's ``INPUTS`` alone): a key is made of

* the task's identity (module and qualified name), so two tasks with equal inputs never share an entry;
* the task's own source and the source files of the library modules that do its work, so a code edit
  invalidates what the old code computed;
* the content of its inputs (numpy-aware: a view and its contiguous copy give one key);
* for inputs that name files or folders, a fingerprint of what is there (relative path, size, mtime),
  so an edited source folder is not answered from the cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

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
        h.update(f"dict{len(obj)}".encode())
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _digest(obj[k], h)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}{len(obj)}".encode())
        for x in obj:
            _digest(x, h)
    else:
        h.update(repr(obj).encode())


def _task_source(fn) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return ""


@lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def code_digest(modules: Iterable[str]) -> str:
    """sha256 over the source files of ``modules`` (dotted names, found without importing them)."""
    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if not origin or not os.path.isfile(origin):
            h.update(f"{name}\0absent\n".encode())
            continue
        st = os.stat(origin)
        h.update(f"{name}\0{_file_digest(origin, st.st_size, st.st_mtime_ns)}\n".encode())
    return h.hexdigest()


def path_fingerprint(path: str | os.PathLike) -> str:
    """What is at ``path`` now: a file's (size, mtime); a folder's files' (relative path, size, mtime).

    A changed, added, removed or touched file changes the fingerprint. Hidden files count too (the
    cheap, safe side: at worst a needless recomputation). A missing path fingerprints as "missing".
    """
    p = Path(path)
    h = hashlib.sha256()
    try:
        st = p.stat()
    except OSError:
        return "missing"
    if p.is_file():
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        return h.hexdigest()
    for dirpath, dirnames, filenames in os.walk(p):
        dirnames.sort()
        for name in sorted(filenames):
            f = Path(dirpath) / name
            try:
                fs = f.stat()
            except OSError:
                continue
            h.update(f"{f.relative_to(p)}\0{fs.st_size}:{fs.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _lookup(parameters: dict, dotted: str):
    value = parameters
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def content_key_with(*, code: Iterable[str] = (), paths: Iterable[str] = (),
                     ignore: Iterable[str] = ()) -> Callable:
    """A ``cache_key_fn``: task identity + task source + source of the ``code`` modules + inputs.

    ``paths``: names of parameters that hold a file or folder path (``"options.groups"`` looks inside a
    dict parameter); their fingerprint (:func:`path_fingerprint`) joins the key, besides the path
    itself. ``ignore``: parameters left out (they do not change the result, e.g. a worker count).
    """
    code, paths, ignore = tuple(code), tuple(paths), frozenset(ignore)

    def key(context, parameters: dict) -> str:
        fn = context.task.fn
        h = hashlib.sha256()
        h.update(f"{fn.__module__}.{fn.__qualname__}\0".encode())
        h.update(_task_source(fn).encode())
        if code:
            h.update(code_digest(code).encode())
        _digest({k: v for k, v in parameters.items() if k not in ignore}, h)
        for name in paths:
            value = _lookup(parameters, name)
            if isinstance(value, (str, os.PathLike)):
                h.update(f"{name}\0{path_fingerprint(value)}".encode())
        return f"{fn.__qualname__}-{h.hexdigest()[:40]}"

    return key


#: Task identity, task source and inputs, with no library code or paths: for tasks whose whole logic is
#: in their own body.
content_key = content_key_with()
