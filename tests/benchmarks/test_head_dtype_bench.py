"""Smoke run of benchmarks/head_dtype.py on the tiny RoBERTa with random heads and tiny dev files.

Checks what a reader of head_dtype_cpu.json relies on: every configuration scored and timed,
float32 agrees with itself, counts within the data size; never this machine's speed.
"""

from __future__ import annotations

import json
from pathlib import Path

from app_harness import save_tiny_heads

from benchmarks import head_dtype
from models.backbone import Backbone

SST = "sentence\tlabel\nit was great fun\t1\na dull and tired film\t0\nnot bad at all\t1\n"
CONLL = "-DOCSTART- -X- -X- O\n\nJohn NNP B-NP B-PER\nlives VBZ B-VP O\nin IN B-PP O\n"
CONLL += "Paris NNP B-NP B-LOC\n\n"


def test_head_dtype_benchmark_scores_and_times_every_config(
    tiny_roberta: Backbone, tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    heads = save_tiny_heads(tiny_roberta.info, tmp_path / "heads")
    data = tmp_path / "data"
    data.mkdir()
    (data / "sst.tsv").write_text(SST)
    (data / "conll.txt").write_text(CONLL)
    argv = ["--backbone", str(tiny_roberta_dir), "--heads-dir", str(heads)]
    argv += ["--data-dir", str(data), "--dev", "sentiment=sst.tsv,ner=conll.txt"]
    argv += ["--out", str(tmp_path), "--repeats", "2", "--warmup", "0", "--batch", "3"]
    assert head_dtype.main(argv) == 0
    result = json.loads((tmp_path / "head_dtype_cpu.json").read_text())
    assert (tmp_path / "head_dtype_cpu.png").stat().st_size > 0
    assert set(result["speed"]) == set(head_dtype.CONFIGS) == set(result["configs"])
    for task, n in (("sentiment", 3), ("ner", 1)):
        row = result["quality"][task]
        assert row["n"] == n
        assert row["fp32"]["identical_to_fp32"] == n
        assert row["fp32"]["max_score_gap_to_fp32"] == 0.0
        for name in head_dtype.CONFIGS:
            assert 0 <= row[name]["identical_to_fp32"] <= n
    assert "accuracy" in result["quality"]["sentiment"]["fp32"]["metrics"]
    assert "f1" in result["quality"]["ner"]["fp32"]["metrics"]
    for row in result["speed"].values():
        assert row["all_texts_per_s"]["n"] == 2 and row["all_over_embedding"]["median"] > 0
