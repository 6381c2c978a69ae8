"""`python -m train.rescore` gives, from cached states, the engine's numbers on every
case view (the default MiniLM ignores case, so one cache serves all three views)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from heads.shipped import PRETRAINED_HEADS
from models.backbone import Backbone
from train.data import read_examples
from train.engine_eval import evaluate_views
from train.loop import dataset_name
from train.rescore import main

SENTENCES = [
    "EU/B-ORG rejects/O German/B-MISC call/O to/O boycott/O British/B-MISC lamb/O",
    "Peter/B-PER Blackburn/I-PER visited/O New/B-LOC York/I-LOC with/O Acme/B-ORG Corp/I-ORG",
    "the/O Straße/O in/O BRUSSELS/B-LOC on/O 1996-08-22/O ,/O said/O Reuters/B-ORG",
    "Japan/B-LOC beat/O Syria/B-LOC 2-1/O in/O the/O Asian/B-MISC Cup/I-MISC",
]


def test_cached_views_match_the_engine(tmp_path: Path, minilm: Backbone) -> None:
    data = tmp_path / "dev.txt"
    rows = [
        "\n".join(" ".join([*w.split("/")[:1], "X", "X", w.split("/")[1]]) for w in s.split())
        for s in SENTENCES
    ]
    data.write_text("\n\n".join(rows) + "\n")
    head = Path(PRETRAINED_HEADS) / "ner"
    out = tmp_path / "scores.json"
    argv = ["--head", str(head), "--data", str(data), "--cache-dir", str(tmp_path / "c")]
    assert main([*argv, "--json", str(out)]) == 0
    scores = json.loads(out.read_text())
    engine = evaluate_views(head, read_examples(data), minilm, ["as-is", "lower", "upper"])
    name = dataset_name(str(data))
    for view, suffix in (("as-is", ""), ("lower", "_lower"), ("upper", "_upper")):
        assert scores[f"{name}{suffix}_argmax_f1"] == pytest.approx(engine["views"][view]["f1"])
    assert scores["mean_argmax_f1"] == pytest.approx(engine["mean"])
    assert scores[f"{name}_argmax_f1"] > 0.5  # a real head on real sentences: not 0 == 0
    assert {f"{name}{s}_viterbi_f1" for s in ("", "_lower", "_upper")} <= set(scores)
