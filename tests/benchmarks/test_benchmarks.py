"""Smoke runs of every benchmark on the tiny RoBERTa: seconds, so the benchmark code cannot rot.

They check what a reader of the results relies on (files written, machine and command
recorded, the measured quantities make sense), never the speed of this machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import early_exit, memory, one_pass, overhead, scaling

FAST = ["--repeats", "2", "--warmup", "0", "--threads", "1"]


def _run(module: Any, tiny_dir: Path, out: Path, *extra: str) -> dict[str, Any]:
    assert module.main([*FAST, "--backbone", str(tiny_dir), "--out", str(out), *extra]) == 0
    result = json.loads((out / f"{module.NAME}_cpu.json").read_text())
    assert (out / f"{module.NAME}_cpu.png").stat().st_size > 0
    assert result["machine"]["torch_threads"] == 1
    assert result["machine"]["cpu"]
    assert result["command"]
    return result


def test_overhead_reports_every_head_count_with_its_flop_floor(
    tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    result = _run(overhead, tiny_roberta_dir, tmp_path, "--shapes", "1x8,2x16", "--heads", "1,3")
    assert [(r["batch"], r["length"]) for r in result["rows"]] == [(1, 8), (2, 16)]
    for row in result["rows"]:
        assert set(row["heads"]) == {"1", "3"}
        assert row["heads"]["3"]["kinds"] == ["sequence", "sequence", "token"]
        # more heads add more FLOPs; each median lies within its min..max
        assert 0 < row["heads"]["1"]["flop_floor_pct"] < row["heads"]["3"]["flop_floor_pct"]
        o = row["heads"]["3"]["overhead_pct"]
        assert o["min"] <= o["median"] <= o["max"]
        assert row["backbone_s"]["n"] == 2


def test_overhead_runs_bf16_heads_on_a_bf16_backbone_on_cpu(
    tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    argv = [*FAST, "--backbone", str(tiny_roberta_dir), "--out", str(tmp_path)]
    argv += ["--shapes", "2x16", "--heads", "3", "--dtype", "bfloat16", "--head-dtype", "bfloat16"]
    assert overhead.main(argv) == 0
    result = json.loads((tmp_path / "overhead_cpu_bfloat16_heads-bfloat16.json").read_text())
    assert result["settings"]["head_dtype"] == "torch.bfloat16"
    assert result["rows"][0]["heads"]["3"]["overhead_pct"]["median"] > -100


def test_one_pass_times_both_variants_per_shape(tiny_roberta_dir: Path, tmp_path: Path) -> None:
    result = _run(one_pass, tiny_roberta_dir, tmp_path, "--shapes", "1x16,4x16")
    assert len(result["tasks"]) == 3
    row = result["rows"][1]
    assert row["batch"] == 4
    assert row["one_pass_seq_per_s"] == pytest.approx(4 / row["one_pass_s"]["median"])
    assert row["speedup"]["min"] <= row["speedup"]["median"] <= row["speedup"]["max"]


def test_memory_streaming_holds_far_less_than_stacked(
    tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    result = _run(
        memory,
        tiny_roberta_dir,
        tmp_path,
        "--tasks",
        "1,3",
        "--batches",
        "2",
        "--lengths",
        "16,32",
        "--base",
        "2x32",
    )
    sweeps = result["sweeps"]
    assert [r["length"] for r in sweeps["length"]] == [16, 32]
    for row in sweeps["tasks"] + sweeps["batch"] + sweeps["length"]:
        assert row["stacked_extra_mib"]["median"] > row["streaming_extra_mib"]["median"]
        # the stacked path holds at least the L+1 hidden states it asked for
        assert row["stacked_extra_mib"]["median"] >= row["held_by_construction_mib"]["stacked"]
    # the stacked path grows with length
    lengths = sweeps["length"]
    assert lengths[1]["stacked_extra_mib"]["median"] > lengths[0]["stacked_extra_mib"]["median"]


def test_early_exit_runs_only_the_layers_the_heads_need(
    tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    result = _run(early_exit, tiny_roberta_dir, tmp_path, "--shapes", "2x16", "--cuts", "1,2")
    variants = result["rows"][0]["variants"]
    assert variants["all layers"]["layers_run"] == result["num_layers"] == 3
    assert variants["cut at 1"]["layers_run"] == 1
    assert variants["cut at 2"]["layers_run"] == 2
    assert variants["cut at 1"]["states_read"] == 2  # Z_0 and Z_1
    assert variants["every 2nd layer"]["states_read"] < variants["all layers"]["states_read"]
    assert variants["all layers"]["time_vs_all_layers"]["median"] == 1.0


def test_scaling_reports_overhead_split_and_sizes(tiny_roberta_dir: Path, tmp_path: Path) -> None:
    result = _run(scaling, tiny_roberta_dir, tmp_path, "--backbones", "minilm", "--shapes", "1x16")
    (row,) = result["rows"]
    assert row["hidden_size"] == 64 and row["num_layers"] == 3
    assert row["head_params"] > 0 and row["flop_floor_pct"] > 0
    assert set(row["accumulate_only_overhead_pct"]) == {"median", "min", "max"}


def test_large_shapes_match_the_published_models() -> None:
    from benchmarks.shapes import _config

    large = _config("roberta-large")
    assert (large.hidden_size, large.num_hidden_layers, large.intermediate_size) == (
        1024,
        24,
        4096,
    )
    bart = _config("bart-large")
    assert (bart.d_model, bart.encoder_layers) == (1024, 12)
    with pytest.raises(ValueError):
        _config("gpt-9")
