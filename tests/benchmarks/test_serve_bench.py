"""Smoke run of benchmarks/serve.py on the tiny RoBERTa: a real server, a few seconds of load.

Checks what a reader of serve_cpu.json relies on (every task set and concurrency measured,
ratios computed from the numbers shown, server exited cleanly), never this machine's speed.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from benchmarks import serve


@pytest.mark.slow
@pytest.mark.parametrize("client", ["httpx", "hey"])
def test_serve_benchmark_measures_every_point(
    client: str, tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    if client == "hey" and shutil.which("hey") is None:
        pytest.skip("hey is not installed (apt-get install hey)")
    argv = ["--backbone", str(tiny_roberta_dir), "--out", str(tmp_path), "--threads", "1"]
    argv += ["--client", client]
    argv += ["--repeats", "2", "--warmup", "0", "--seconds", "0.4"]
    argv += ["--concurrency", "1,4", "--offline-batches", "1,4"]
    assert serve.main(argv) == 0
    result = json.loads((tmp_path / "serve_cpu.json").read_text())
    assert (tmp_path / "serve_cpu.png").stat().st_size > 0
    assert result["command"] and result["machine"]["cpu"]
    assert result["server_exit_code"] == 0 and result["client"] == client
    comp = result["comparison"]
    for name in ("embedding", "heads3", "all"):
        assert set(result["server"][name]) == {"1", "4"}
        point = result["server"][name]["4"]
        assert point["non_200"] == 0 and point["texts_per_s"]["n"] == 2
        assert result["offline"][name]["best"]["n"] == 4  # before + after the server phase
        assert point["texts_per_s"]["median"] > 0 and point["p99_s"] >= point["p50_s"] > 0
        if Path("/proc/self/task").is_dir():  # the server's threads, by their OS names
            assert point["threads"]["sidetask-worker"]["cpu_share"] > 0
        off = result["offline"][name]
        assert off["best"] == off["by_batch"][str(off["best_batch"])]
        row = comp["per_task_set"][name]
        assert row["server_over_offline"] == pytest.approx(
            row["server_best_texts_per_s"] / row["offline_best_texts_per_s"]
        )


def test_rate_counts_only_the_steady_part_of_the_window() -> None:
    from benchmarks.live_server import Outcome
    from benchmarks.serve import in_window_rate

    # one answer every 0.1 s from t=0.5 s (the first batch) to t=3.9 s; one straggler after 4 s
    outcomes = [Outcome(0.0, 200, 0.5 + 0.1 * i) for i in range(35)]
    outcomes += [Outcome(3.0, 200, 1.5), Outcome(1.0, 429, 0.01)]
    assert in_window_rate(outcomes, 4.0) == 35 / 4.0
    assert (
        in_window_rate(outcomes, 4.0, ramp_up=1.0)
        == sum(1 for i in range(35) if 0.5 + 0.1 * i > 1.0) / 3.0
    )
    assert in_window_rate(outcomes, 4.0, ramp_up=9.0) == in_window_rate(outcomes, 4.0, 2.0)


def test_the_default_backbone_is_served_with_the_shipped_heads_folder(tmp_path: Path) -> None:
    """Their own folder, so that dtype auto finds their fidelity gate: the server and the
    offline engine run as `sidetask serve` starts without flags."""
    from heads.shipped import PRETRAINED_HEADS

    args = argparse.Namespace(heads_dir=None, backbone=None)
    assert serve.prepare_heads(None, args, tmp_path / "heads") == PRETRAINED_HEADS
    assert not (tmp_path / "heads").exists()
