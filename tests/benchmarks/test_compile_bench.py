"""`--compile` through the server's loading path: same answers, start-up and speed recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import compile as compile_bench


@pytest.mark.slow
def test_compiled_engine_answers_like_eager_and_reports_startup(
    tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    argv = ["--backbone", str(tiny_roberta_dir), "--out", str(tmp_path), "--batch", "4"]
    assert compile_bench.main([*argv, "--repeats", "1", "--warmup", "0"]) == 0
    got = json.loads((tmp_path / "compile_cpu.json").read_text())
    assert got["max_abs_embedding_diff"] < 1e-4
    assert got["startup_s"]["compiled"] > 0 and got["startup_s"]["eager"] > 0
    assert set(got["speedup_compiled_over_eager"]) == {"embedding", "all"}
    assert set(got["texts_per_s"]) == {
        "eager embedding",
        "compiled embedding",
        "eager all",
        "compiled all",
    }
