"""The accumulator-dtype microbenchmark records both dtypes' times and their ratio."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import accumulator_dtype


def test_records_per_layer_times_for_both_dtypes(tmp_path: Path) -> None:
    argv = ["--rows", "8,24", "--repeats", "1", "--warmup", "0", "--out", str(tmp_path)]
    assert accumulator_dtype.main(argv) == 0
    record = json.loads((tmp_path / "accumulator_dtype_cpu.json").read_text())
    assert record["shape"] == {"hidden": 384, "task_ks": [64, 64, 128]}
    assert isinstance(record["cpu_has_fast_bf16"], bool)
    assert [r["rows"] for r in record["results"]] == [8, 24]
    for row in record["results"]:
        for part in ("projection", "update"):
            ms = row[part]["ms"]
            assert set(ms) == {"float32", "bfloat16"} and all(v["median"] > 0 for v in ms.values())
            ratio = row[part]["float32_over_bfloat16"]["values"][0]
            assert ratio * 0 == 0 and ratio > 0  # finite
