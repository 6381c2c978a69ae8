"""What the CPU can do fast: decides the dtype the heads compute in by default."""

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
