"""The per-thread CPU counts the serve benchmark records beside its throughput."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from benchmarks.thread_clock import ThreadClock, median_shares, sample, shares
from server.os_threads import name_os_thread

needs_proc = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="per-thread counters come from /proc"
)


@needs_proc
def test_a_busy_named_thread_shows_its_cpu_under_its_name() -> None:
    seen: dict[str, dict[str, ThreadClock]] = {}

    def spin() -> None:  # samples itself: it is alive and named at both samples
        assert name_os_thread("bench-spinner")
        seen["before"] = sample(os.getpid())
        start = time.thread_time()
        while time.thread_time() - start < 0.3:  # CPU time, not a sleep: deterministic work
            pass
        seen["after"] = sample(os.getpid())

    thread = threading.Thread(target=spin)
    thread.start()
    thread.join(60)
    before, after = seen["before"], seen["after"]
    assert "bench-spinner" in before and "bench-spinner" in after, sorted(after)
    assert after["bench-spinner"].ticks > before["bench-spinner"].ticks
    assert shares(before, after, 1.0)["bench-spinner"]["cpu_share"] > 0


def test_shares_are_per_second_and_skip_threads_missing_from_either_sample() -> None:
    from benchmarks.thread_clock import TICKS_PER_S

    before = {"worker": ThreadClock(0, 10), "gone": ThreadClock(5, 5)}
    after = {"worker": ThreadClock(TICKS_PER_S * 3, 410), "new": ThreadClock(9, 9)}
    got = shares(before, after, 4.0)
    assert got == {"worker": {"cpu_share": 0.75, "voluntary_switches_per_s": 100.0}}


def test_median_shares_keep_threads_seen_in_every_round() -> None:
    rounds = [
        {"a": {"cpu_share": 0.2, "voluntary_switches_per_s": 1.0}},
        {
            "a": {"cpu_share": 0.6, "voluntary_switches_per_s": 3.0},
            "b": {"cpu_share": 1.0, "voluntary_switches_per_s": 0.0},
        },
        {"a": {"cpu_share": 0.4, "voluntary_switches_per_s": 2.0}},
    ]
    assert median_shares(rounds) == {"a": {"cpu_share": 0.4, "voluntary_switches_per_s": 2.0}}
    assert median_shares([]) == {}


def test_a_process_without_proc_entries_samples_empty(tmp_path: Path) -> None:
    assert sample(12345, proc=tmp_path) == {}
