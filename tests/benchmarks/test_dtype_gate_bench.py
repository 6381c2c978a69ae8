"""Smoke run of benchmarks/dtype_gate.py on the tiny RoBERTa with random heads and tiny dev files.

Checks what ``dtype: auto`` and a reader of dtype_gate_<device>.json rely on: the device, torch
version and fingerprint of exactly these weights, every criterion with its counts, a verdict
that is the conjunction of the criteria, and a file engine/dtype_choice.py accepts.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from app_harness import save_tiny_heads

from benchmarks import dtype_gate
from engine.dtype_choice import Hardware, choose_dtype, fingerprint
from models.backbone import Backbone

SST = "sentence\tlabel\nit was great fun\t1\na dull and tired film\t0\nnot bad at all\t1\n"
LONG = "sentence\tlabel\n" + "a long review that goes on " * 40 + "\t1\nshort one\t0\n"
CONLL = "-DOCSTART- -X- -X- O\n\nJohn NNP B-NP B-PER\nlives VBZ B-VP O\nin IN B-PP O\n"
CONLL += "Paris NNP B-NP B-LOC\n\nAnna NNP B-NP B-PER\nsings VBZ B-VP O\n\n"


def test_gate_benchmark_records_every_criterion_and_the_fingerprint(
    tiny_roberta: Backbone, tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    heads = save_tiny_heads(tiny_roberta.info, tmp_path / "heads")
    data = tmp_path / "data"
    data.mkdir()
    (data / "sst.tsv").write_text(SST)
    (data / "long.tsv").write_text(LONG)
    (data / "conll.txt").write_text(CONLL)
    argv = ["--backbone", str(tiny_roberta_dir), "--heads-dir", str(heads)]
    argv += ["--data-dir", str(data), "--candidate", "bfloat16", "--batch", "2"]
    argv += ["--dev", "sentiment=sst.tsv,sentiment=long.tsv,ner=conll.txt", "--max-chars", "200"]
    argv += ["--out", str(tmp_path / "results")]
    assert dtype_gate.main(argv) == 0
    result = json.loads((tmp_path / "results" / "dtype_gate_cpu.json").read_text())

    gate = result["gate"]
    assert (gate["device_kind"], gate["candidate"]) == ("cpu", "bfloat16")
    assert gate["device_name"] and result["torch"] == torch.__version__
    assert gate["fingerprint"] == fingerprint(tiny_roberta.info, [heads])
    criteria = gate["criteria"]
    assert set(criteria) == {"embedding_cosine", "sentiment_identical", "ner_f1"}
    assert criteria["embedding_cosine"]["texts"] == 3 + 2 + 2  # every text of every set
    assert 0.9 < criteria["embedding_cosine"]["min"] <= 1.0 + 1e-6
    assert criteria["sentiment_identical"]["texts"] == 5  # both sentiment sets pooled
    assert 0 <= criteria["sentiment_identical"]["identical"] <= 5
    assert {"f1_float32", "f1_bfloat16", "difference_points"} <= set(criteria["ner_f1"])
    assert gate["passed"] == all(c["passed"] for c in criteria.values())
    assert gate["failed"] == [k for k, c in criteria.items() if not c["passed"]]
    long_set = next(s for s in result["sets"] if s["file"] == "long.tsv")
    assert long_set["cut_to_max_chars"] == 1 and result["subset"]["max_chars"] == 200

    # the file is what dtype: auto reads: it resolves to the candidate exactly when it passed
    choice = choose_dtype(
        "auto",
        torch.device("cpu"),
        Hardware(cpu_fast_bf16=True),
        fingerprint(tiny_roberta.info, [heads]),
        tmp_path / "results",
    )
    assert (choice.dtype == torch.bfloat16) == gate["passed"]


def test_a_seeded_subset_is_recorded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rows = "".join(f"text number {i}\t{i % 2}\n" for i in range(20))
    (data / "many.tsv").write_text("sentence\tlabel\n" + rows)
    args = dtype_gate.parse_args(["--data-dir", str(data), "--limit", "5"])
    first, info = dtype_gate.load_set(args, "many.tsv")
    again, _ = dtype_gate.load_set(args, "many.tsv")
    assert (info["n"], info["texts_in_file"]) == (5, 20)
    assert [e.text for e in first] == [e.text for e in again]  # seeded: the same 5 every run
