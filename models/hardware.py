"""What the CPU can do fast. ``accumulator_dtype=auto`` runs the accumulator's projection in
bfloat16 on CPUs with bf16 dot products (engine/loading.py); the backbone's and the head
layers' dtypes never change on it. Benchmarks record it with their results, since bfloat16
speed on CPU depends on it (docs/server.md#head-dtype)."""

from __future__ import annotations

import functools
from pathlib import Path


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The first CPU's feature flags; empty where they cannot be read (not Linux x86)."""
    try:
        text = Path(cpuinfo).read_text(encoding="ascii", errors="ignore")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[-1].split())
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_has_amx_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True on x86 CPUs with AMX-BF16 tiles (Sapphire Rapids and later), where oneDNN runs
    bfloat16 matmuls several times faster than float32. False where it cannot be told."""
    return "amx_bf16" in cpu_flags(cpuinfo)


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True where oneDNN has bf16 dot-product instructions (AVX512-BF16: Cooper Lake, Zen 4
    and later; or AMX), so a bf16 matmul beats float32 even at a few rows."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags(cpuinfo))
