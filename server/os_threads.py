"""Names of the server's own threads as the operating system shows them.

Python's thread names stay inside Python; ``top -H``, ``ps -L``, ``/proc/<pid>/task/*/comm``
and the benchmarks' per-thread CPU counts (benchmarks/thread_clock.py) see the process name
for every thread. Naming the worker and the answer thread there tells an operator which
thread is busy without a Python profiler.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

PR_SET_NAME = 15  # linux/prctl.h
MAX_NAME = 15  # the kernel keeps 15 bytes and a NUL


def name_os_thread(name: str) -> bool:
    """Give the calling thread ``name`` (cut to 15 bytes) in the OS; False where that is not
    possible (not Linux, no libc): the thread runs the same either way."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_NAME, name.encode()[:MAX_NAME], 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
