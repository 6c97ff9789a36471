"""maya.malloc: the feature loop's threads share two glibc malloc arenas, and a user's own limit wins."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc malloc arenas only")

# Eight threads allocate at once (numpy buffers above the small-object pools, released by ``malloc``), then
# glibc's own malloc_info() report is read back and its arenas (<heap nr=...>) counted.
_PROBE = r"""
import ctypes, os, re, sys, tempfile, threading
import numpy as np
from maya import malloc
limited = malloc.limit_arenas() if sys.argv[1] == "limit" else None
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    for _ in range(200):
        blocks = [np.ones(20_000) for _ in range(8)]
        del blocks
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
path = os.path.join(tempfile.mkdtemp(), "info.xml")
f = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(f))
libc.fclose(ctypes.c_void_p(f))
print(limited, len(re.findall(r"<heap nr=", open(path).read())))
"""


def probe(mode: str, **env) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True,
                         env={**{k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")},
                              **env})
    limited, heaps = out.stdout.split()
    return limited, int(heaps)


def test_threads_that_allocate_at_once_share_at_most_two_arenas_after_the_limit():
    limited, heaps = probe("limit")
    assert limited == "2"
    assert heaps <= 2


def test_without_the_limit_the_same_threads_make_more_arenas_so_the_probe_can_tell():
    _, heaps = probe("none")
    assert heaps > 2


def test_a_users_own_malloc_arena_max_is_left_as_it_is():
    limited, heaps = probe("limit", MALLOC_ARENA_MAX="4")
    assert limited == "None"
    assert heaps <= 4
