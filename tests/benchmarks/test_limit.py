"""The limit script's arithmetic: limit = peak / FLOPs per text, achieved / limit from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import flops, limit


def _serve_json(path: Path) -> Path:
    per = {
        name: {"offline_best_texts_per_s": 10.0, "server_best_texts_per_s": 8.0}
        for name in ("embedding", "heads3", "all")
    }
    record = {
        "created": "2026-12-03T00:00:00+00:00",
        "machine": {"dtype": "float32"},
        "comparison": {"per_task_set": per},
    }
    path.write_text(json.dumps(record))
    return path


def test_limit_follows_the_measured_peak_and_the_backbones_flops(
    tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    serve_json = _serve_json(tmp_path / "serve.json")
    argv = ["--backbone", str(tiny_roberta_dir), "--out", str(tmp_path), "--size", "128"]
    argv += ["--repeats", "2", "--warmup", "0", "--batch", "16", "--serve-json", str(serve_json)]
    assert limit.main(argv) == 0
    got = json.loads((tmp_path / "limit_cpu.json").read_text())
    assert set(got["peak"]) == {"float32", "bfloat16"}
    per_text = got["flops_per_text"]["serve workload"]
    shape = flops.EncoderShape(**got["shape"])
    lo, hi = got["workload"]["min_tokens"], got["workload"]["max_tokens"]
    assert flops.backbone_flops(shape, 1, lo) <= per_text <= flops.backbone_flops(shape, 1, hi)
    for dtype, peak in got["peak"].items():
        assert peak["flop_per_s"]["n"] == 2
        assert got["limit_texts_per_s"][dtype]["serve workload"] == pytest.approx(
            peak["flop_per_s"]["median"] / per_text
        )
        bb = got["achieved"][f"backbone alone {dtype}"]
        assert bb["achieved_over_limit"] == pytest.approx(
            bb["texts_per_s"]["median"] / bb["limit_texts_per_s"]
        )
    served = got["served"]
    assert served["limit_dtype"] == "float32"
    assert served["achieved_over_limit"]["server embedding"] == pytest.approx(
        8.0 / got["limit_texts_per_s"]["float32"]["serve workload"]
    )


def test_flops_per_text_counts_each_text_at_its_own_length() -> None:
    shape = flops.EncoderShape(hidden=8, intermediate=32, layers=2)
    mixed = limit.flops_per_text(shape, [4, 12])
    assert mixed == pytest.approx(
        (flops.backbone_flops(shape, 1, 4) + flops.backbone_flops(shape, 1, 12)) / 2
    )
    assert mixed < flops.backbone_flops(shape, 1, 12)  # no padding to the longest
