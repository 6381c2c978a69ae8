"""Smoke runs of benchmarks/scheduling.py and benchmarks/step_size.py on the tiny RoBERTa.

Checks what a reader of their JSON relies on (every phase measured, ratios from the numbers
shown, the giant request within the budget, the server exited cleanly), never the speed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from benchmarks import scheduling, step_size
from benchmarks.live_server import thread_cpu_ms

TEXT = "the film was slow but the last hour moved me and Anna loved Paris"


def _data(root: Path) -> Path:
    """Tiny SST-2 and IMDB dev files in the shared data's format."""
    (root / "sst2").mkdir(parents=True)
    (root / "imdb").mkdir()
    sentences = [" ".join(TEXT.split()[i % 5 : i % 5 + 4 + i % 7]) for i in range(40)]
    (root / "sst2" / "dev.tsv").write_text(
        "sentence\tlabel\n" + "".join(f"{s}\t1\n" for s in sentences)
    )
    reviews = [" ".join([TEXT] * (3 + i % 4)) for i in range(30)]
    (root / "imdb" / "dev.tsv").write_text("text\tlabel\n" + "".join(f"{r}\t0\n" for r in reviews))
    return root


@pytest.mark.slow
def test_scheduling_benchmark_measures_every_phase(tiny_roberta_dir: Path, tmp_path: Path) -> None:
    argv = ["--backbone", str(tiny_roberta_dir), "--out", str(tmp_path / "out")]
    argv += ["--data-dir", str(_data(tmp_path / "data")), "--threads", "1"]
    argv += ["--repeats", "2", "--warmup", "0", "--requests", "3", "--seconds", "0.5"]
    argv += ["--budget", "3000"]
    assert scheduling.main(argv) == 0
    result = json.loads((tmp_path / "out" / "scheduling_cpu.json").read_text())
    assert (tmp_path / "out" / "scheduling_cpu.png").stat().st_size > 0
    assert result["server_exit_code"] == 0 and "embedding" in result["tasks"]
    assert 0 < result["giant_request"]["tokens"] <= 3000
    lone = result["lone"]
    assert {"served_all_socket", "served_embedding_socket"} <= set(lone["p50_s"])
    for name, stats in lone["ratios"].items():
        num, den = name.split("/")
        ratio = [a / b for a, b in zip(*_pairs(lone["p50_s"], num, den), strict=True)]
        assert stats["values"] == pytest.approx(ratio)
    for r in result["giant"]["rounds"]:
        for phase in ("idle", "with_giant"):
            assert r[phase]["failed"] == 0 and r[phase]["small"]["n"] > 0
    assert result["hangup"]["seconds_until_free"]["n"] == 3
    cpu = lone["cpu_ms_per_request"]
    for name in ("served_embedding", "served_all"):
        loop, total = cpu[f"{name}:server_event_loop"], cpu[f"{name}:server_all_threads"]
        assert loop["n"] == 2 and all(
            0 <= a <= b for a, b in zip(loop["values"], total["values"], strict=True)
        )


def test_scheduling_benchmark_runs_only_the_phases_asked_for(
    tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    argv = ["--backbone", str(tiny_roberta_dir), "--out", str(tmp_path / "out")]
    argv += ["--data-dir", str(_data(tmp_path / "data")), "--threads", "1", "--phases", "lone"]
    argv += ["--repeats", "1", "--warmup", "0", "--requests", "2", "--budget", "3000"]
    assert scheduling.main(argv) == 0
    result = json.loads((tmp_path / "out" / "scheduling_cpu.json").read_text())
    assert "lone" in result and "giant" not in result and "hangup" not in result
    assert not (tmp_path / "out" / "scheduling_cpu.png").exists()  # the plot needs all three


def test_thread_cpu_counts_the_work_of_each_thread() -> None:
    """The lone phase's CPU per request reads /proc per thread: the main thread's id is the
    process id, and its CPU time grows by what it computed."""
    before = thread_cpu_ms(os.getpid())
    start = time.thread_time()
    while time.thread_time() - start < 0.3:  # busy: 300 ms of this thread's CPU
        pass
    after = thread_cpu_ms(os.getpid())
    assert os.getpid() in before
    assert after[os.getpid()] - before[os.getpid()] >= 200


def _pairs(p50: dict[str, dict[str, list[float]]], num: str, den: str) -> tuple[list[float], ...]:
    names = {"model_alone": "model_alone_embedding"}
    return p50[names.get(num, num)]["values"], p50[names.get(den, den)]["values"]


@pytest.mark.slow
def test_step_size_benchmark_measures_every_row_count(
    tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    argv = ["--backbone", str(tiny_roberta_dir), "--out", str(tmp_path / "out")]
    argv += ["--data-dir", str(_data(tmp_path / "data")), "--threads", "1"]
    argv += ["--repeats", "2", "--warmup", "0", "--rows", "1,2"]
    assert step_size.main(argv) == 0
    result = json.loads((tmp_path / "out" / "step_size_cpu.json").read_text())
    for kind in ("long", "short"):
        assert set(result["ms_per_window"][kind]) == {"1", "2"}
        assert result["ms_per_window"][kind]["2"]["n"] == 2
