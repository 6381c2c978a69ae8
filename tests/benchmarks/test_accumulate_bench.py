"""Smoke run of the kernel benchmark on CPU: tiny sizes, seconds, so the script cannot rot.

Checks what a reader of the results relies on (files named by device, command and machine
recorded, every variant timed with its statistics), never this machine's speed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from benchmarks import accumulate


def test_cpu_run_writes_json_and_table(tmp_path: Path) -> None:
    argv = ["--device", "cpu", "--rows", "5,33", "--variants", "eager", "--repeats", "5"]
    argv += ["--warmup", "1", "--inner", "2", "--models", "bart-large", "--out", str(tmp_path)]
    argv += ["--whole-model", "--model", "minilm", "--model-shapes", "1x12"]
    assert accumulate.main(argv) == 0
    record = json.loads((tmp_path / "accumulate_cpu.json").read_text())
    assert record["command"] and record["machine"]["cpu"]
    assert "not a GPU result" in record["label"]
    assert [r["rows"] for r in record["layers"]] == [5, 33]
    for row in record["layers"]:
        eager = row["variants"]["eager"]
        assert len(eager["time_s"]["values"]) == 5
        assert eager["time_s"]["min"] <= eager["time_s"]["median"] <= eager["time_s"]["max"]
        assert eager["gb_per_s"] > 0 and row["bytes"] > 0 and row["flops"] > 0
    overhead = record["whole_model"]["rows"][0]["overhead_pct"]
    assert set(overhead) == {"3 heads (torch)", "accumulate only (torch)"}
    assert "| bart-large | float32 | 33 |" in (tmp_path / "accumulate_cpu.md").read_text()


def test_traffic_counts_each_tensor_once() -> None:
    nbytes, flops = accumulate.traffic(rows=512, hidden=1024, dtype=torch.float16)
    total_k = sum(accumulate.TASK_KS)
    assert nbytes == 512 * 1024 * 2 + total_k * 1024 * 2 + 2 * 512 * total_k * 4
    assert flops == 2 * 512 * 1024 * total_k


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_refuses_clearly_without_cuda(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no CUDA device"):
        accumulate.main(["--out", str(tmp_path)])
