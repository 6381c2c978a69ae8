"""Per-thread CPU of a server process under load, from /proc (Linux).

Why: at saturation the worker thread can be inside a micro-batch all the time and still use
only three quarters of a core, because every torch call gives the GIL up and must take it
back from the event loop (docs/server.md#scheduling). Wall-clock throughput does not show
that; the threads' CPU shares and the worker's voluntary context switches per second do.
Threads are told apart by their OS names (server/os_threads.py); same-named threads add up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ThreadClock:
    """One thread's counters: CPU ticks (user + system) and voluntary context switches."""

    ticks: int
    voluntary_switches: int


def sample(pid: int, proc: Path = Path("/proc")) -> dict[str, ThreadClock]:
    """Counters per thread name of process ``pid``; empty where /proc is not there."""
    out: dict[str, ThreadClock] = {}
    tasks = proc / str(pid) / "task"
    if not tasks.is_dir():
        return out
    for task in tasks.iterdir():
        try:
            name = (task / "comm").read_text().strip()
            # the fields after the command name (which may hold spaces): utime is the 14th
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            status = (task / "status").read_text()
        except OSError:  # the thread ended between the listing and the read
            continue
        ticks = int(fields[11]) + int(fields[12])
        switches = _status_field(status, "voluntary_ctxt_switches")
        before = out.get(name, ThreadClock(0, 0))
        out[name] = ThreadClock(before.ticks + ticks, before.voluntary_switches + switches)
    return out


def _status_field(status: str, key: str) -> int:
    for line in status.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def shares(
    before: dict[str, ThreadClock], after: dict[str, ThreadClock], seconds: float
) -> dict[str, dict[str, float]]:
    """Per thread name: the share of one core it used and its voluntary switches per second
    between two samples ``seconds`` apart (threads present in both)."""
    out: dict[str, dict[str, float]] = {}
    for name, end in after.items():
        start = before.get(name)
        if start is None or seconds <= 0:
            continue
        out[name] = {
            "cpu_share": (end.ticks - start.ticks) / TICKS_PER_S / seconds,
            "voluntary_switches_per_s": (end.voluntary_switches - start.voluntary_switches)
            / seconds,
        }
    return out


def median_shares(runs: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Per thread name and counter, the median over rounds (names seen in every round)."""
    import statistics

    if not runs:
        return {}
    names = set.intersection(*(set(r) for r in runs))
    return {
        name: {key: statistics.median(r[name][key] for r in runs) for key in runs[0][name]}
        for name in sorted(names)
    }
