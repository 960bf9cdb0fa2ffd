"""Keep freed memory inside the process, so CPU passes do not page-fault every batch.

A CPU forward pass allocates activations of tens to hundreds of megabytes. glibc serves
blocks that large with ``mmap`` and gives them back with ``munmap`` when torch frees them, so
the next batch faults every page in again, zero-filled by the kernel: on 2 cores the
EfficientNet-Lite2 feature pass spent as much time in the kernel as in the convolutions
(``bench/bench_allocator.py``). Telling glibc to serve every block from its heap and keep what
is freed (``mallopt``) removes that: the pass runs two to three times as fast, for a peak resident
size about 10 % higher (the freed blocks stay with the process until it exits).

PyTorch's CPU tuning guide suggests preloading jemalloc or tcmalloc for the same reason; this
does it with the C library that is already there, at run time, with nothing to install.
Opt-in: training, evaluation, the dual feature pass and indexing turn it on only with
``DOVE_RETAIN_FREED_MEMORY=1`` in the environment, because a process then keeps its peak
memory until it exits (a cost on a shared node) and the setting has been measured on one
kind of machine only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from functools import cache

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

NEVER_TRIM = 2**31 - 1  # an int: keep every freed byte at the top of the heap
TOP_PAD = 64 << 20  # grow the heap 64 MiB at a time rather than page by page

ENV = "DOVE_RETAIN_FREED_MEMORY"


@cache
def retain_freed_memory() -> bool:
    """Serve large blocks from the heap and keep freed memory (glibc on Linux only).

    Idempotent; True when glibc accepted every setting, False where it does not apply
    (macOS, musl, Windows), which only means the old speed."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, NEVER_TRIM), (M_TOP_PAD, TOP_PAD))
    return all(mallopt(param, value) == 1 for param, value in settings)


def retain_freed_memory_if_enabled() -> bool:
    """``retain_freed_memory`` when ``DOVE_RETAIN_FREED_MEMORY=1``; otherwise nothing."""
    return os.environ.get(ENV, "") == "1" and retain_freed_memory()
