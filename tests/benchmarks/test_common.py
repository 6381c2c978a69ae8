"""Interleaved timing: both clocks kept, ratios per round, ABBA order."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from benchmarks import common


def test_cpu_clock_ignores_time_the_process_does_not_run() -> None:
    # sleeping stands in for being descheduled by other processes on a shared machine
    times = common.time_interleaved(
        {"sleep": lambda: time.sleep(0.02)},
        repeats=2,
        warmup=1,
        device=torch.device("cpu"),
        clock="cpu",
    )
    assert len(times["sleep"]) == 2  # warm-up dropped
    assert min(times.wall["sleep"]) >= 0.02
    assert max(times.cpu["sleep"]) < 0.01
    assert times["sleep"] == times.cpu["sleep"]
    assert times.raw()["clock"] == "cpu"


def test_variants_alternate_order_each_round() -> None:
    calls: list[str] = []
    variants = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    common.time_interleaved(variants, repeats=3, warmup=1, device=torch.device("cpu"))
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"]


def test_paired_ratio_is_taken_round_by_round() -> None:
    times = {"x": [2.0, 4.0, 6.0], "y": [1.0, 4.0, 2.0]}
    ratio = common.paired_ratio(times, "x", "y")
    assert ratio["values"] == [2.0, 1.0, 3.0]
    assert (ratio["median"], ratio["min"], ratio["max"]) == (2.0, 1.0, 3.0)


def test_result_names_carry_shape_device_and_half_precision(tmp_path: Path) -> None:
    def ctx(shape: str, device: str, dtype: torch.dtype) -> common.BenchContext:
        return common.BenchContext(
            torch.device(device),
            dtype,
            1,
            5,
            1,
            tmp_path,
            None,
            "auto",
            "wall",
            shape,  # type: ignore[arg-type]
        )

    assert ctx("minilm", "cpu", torch.float32).tag == "cpu"
    assert ctx("roberta-large", "cpu", torch.float32).tag == "roberta-large_cpu"
    assert ctx("roberta-large", "cuda", torch.float16).tag == "roberta-large_cuda_float16"


def test_benchmarks_ask_the_shipped_folder_for_issue_20s_three_heads() -> None:
    # sentiment-long ships too (issue 19.3); "embedding + 3 heads" keeps meaning these three
    loaded = ["cola", "ner", "sentiment", "sentiment-long"]
    assert common.workload_heads(loaded) == ["cola", "ner", "sentiment"]


def test_benchmarks_ask_a_users_own_heads_for_all_of_them() -> None:
    assert common.workload_heads(["mood", "ner"]) == ["mood", "ner"]
    assert common.workload_heads(["ner", "sentiment"]) == ["ner", "sentiment"]
