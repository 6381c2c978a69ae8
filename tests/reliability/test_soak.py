"""A short soak of the real server at moderate, varied load: every answer as expected and
RSS flat after warm-up (the same script runs 10 minutes on the real backbone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import soak

pytestmark = pytest.mark.slow


def test_short_soak_keeps_rss_within_bound(
    tiny_roberta_dir: Path, tiny_heads: Path, tmp_path: Path
) -> None:
    out = tmp_path / "soak.json"
    argv = [
        "--backbone", str(tiny_roberta_dir),
        "--heads-dir", str(tiny_heads),
        "--seconds", "15",
        "--capacity-seconds", "2",
        "--out", str(out),
    ]  # fmt: skip
    code = soak.main(argv)
    record = json.loads(out.read_text())
    assert code == 0, record
    assert record["unexpected"] == []
    assert record["status_counts"]["422"] >= 1  # the unknown-task requests were refused
    assert record["requests"] >= 0.8 * 15 * record["offered_rps"]  # load was really offered
    rss = record["rss"]
    assert rss["growth_mib"] <= rss["bound_mib"] == 48.0
    assert len(record["rss_samples"]) >= 10
    assert out.with_suffix(".png").stat().st_size > 0


def test_rss_verdict_fails_on_steady_growth() -> None:
    """The bound check itself: a leak of 1 MiB/s over 60 s after warm-up fails; noise passes."""
    leak = [(float(t), 500.0 + max(0, t - 12)) for t in range(60)]
    verdict = soak.rss_verdict(leak, warmup_end=12.0, bound=32.0)
    assert not verdict["ok"] and verdict["growth_mib"] == pytest.approx(47.0)
    assert verdict["slope_mib_per_min"] == pytest.approx(60.0)
    flat = [(float(t), 500.0 + (t % 3)) for t in range(60)]
    assert soak.rss_verdict(flat, warmup_end=12.0, bound=32.0)["ok"]
