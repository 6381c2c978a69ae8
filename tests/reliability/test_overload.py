"""At 2x capacity the real server refuses the excess fast with 429 + Retry-After, keeps the
accepted requests within the queue's latency bound, does not grow, and recovers at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import overload

pytestmark = pytest.mark.slow


def test_two_times_capacity_is_refused_fast_and_recovers(
    tiny_roberta_dir: Path, tiny_heads: Path, tmp_path: Path
) -> None:
    out = tmp_path / "overload.json"
    argv = [
        "--backbone", str(tiny_roberta_dir),
        "--heads-dir", str(tiny_heads),
        "--capacity-seconds", "3",
        "--seconds", "5",
        "--out", str(out),
    ]  # fmt: skip
    code = overload.main(argv)
    record = json.loads(out.read_text())
    checks = record["checks"]
    failed = {k: v for k, v in checks.items() if not v["ok"]}
    assert code == 0 and not failed, failed

    over = record["overload"]
    assert record["offered_rps"] == pytest.approx(2 * record["capacity"]["rps"])
    assert set(over["status_counts"]) == {"200", "429"}  # nothing else, no 5xx
    assert over["refused_with_retry_after"] == over["status_counts"]["429"]
    assert over["refused_latency"]["p99_s"] <= 0.5
    assert over["accepted_latency"]["max_s"] <= record["accepted_latency_bound_s"] * 1.5
    assert record["recovery_s"] <= 5 and record["queue_depth_after"] == 0
    assert record["rss_mib"]["max_during"] - record["rss_mib"]["before_overload"] <= 64
    assert out.with_suffix(".png").stat().st_size > 0
