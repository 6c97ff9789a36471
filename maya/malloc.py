"""At most two glibc malloc arenas in a process that decodes in threads and runs a model.

glibc gives each thread that meets a locked arena an arena of its own, up to 8 per core (16 on 2 cores),
and memory freed in an arena stays there for that arena's next allocations. The feature loop runs a
decode pool per batch, two or three batch threads, the model's forward thread and its intra-op threads:
each thread's arena keeps its own high-water mark of decoded pixels and activations. Two arenas cap that
(measured, ``benchmarks/bench_vs_fastdup.py --repeats 2``, same run: peak RSS of a 600-photo efficientnet-lite0
dedup 667-685 -> 585-597 MiB, CPU seconds equal) where ``malloc_trim`` after each batch cost 15 % CPU and a
fixed 1 MiB ``M_MMAP_THRESHOLD`` (~50 MiB less again) 30 %: every activation page was faulted in anew.

:func:`limit_arenas` is called once, before the feature loop starts its threads (``maya.features``). A user's
own ``MALLOC_ARENA_MAX`` or ``GLIBC_TUNABLES=...arena_max...`` wins (nothing is changed: that is also the way
to set another limit). On a C library other than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

#: Arenas allowed (the main arena counts as one).
DEFAULT_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)

_lock = threading.Lock()
_applied: int | None = None


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None
    except OSError:
        return None


def limit_arenas() -> int | None:
    """Cap glibc's malloc arenas for this process (once; later calls return the first answer).

    Returns the limit set, or None when nothing was changed (not glibc, or the user set their own limit).
    Raises nothing."""
    global _applied
    with _lock:
        if _applied is not None:
            return _applied or None
        _applied = 0
        if os.environ.get("MALLOC_ARENA_MAX") or "arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
            return None
        libc = _libc()
        if libc is None or libc.mallopt(_M_ARENA_MAX, DEFAULT_ARENAS) != 1:  # mallopt returns 1 on success
            return None
        _applied = DEFAULT_ARENAS
        return DEFAULT_ARENAS
