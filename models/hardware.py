"""What the CPU can do fast: recorded with benchmark results, since bfloat16 speed on CPU
depends on it (the server does not switch dtypes on it: docs/server.md#head-dtype)."""

from __future__ import annotations

import functools
from pathlib import Path


@functools.lru_cache(maxsize=1)
def cpu_has_amx_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True on x86 CPUs with AMX-BF16 tiles (Sapphire Rapids and later), where oneDNN runs
    bfloat16 matmuls several times faster than float32. False where it cannot be told."""
    try:
        text = Path(cpuinfo).read_text(encoding="ascii", errors="ignore")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return "amx_bf16" in line.split(":", 1)[-1].split()
    return False
