"""A multi-label head end to end: `sidetask train --kind multilabel` on a TSV whose labels
column holds comma-separated labels, then served: /analyze answers every label's score and
the ones over the threshold in the published schema's shape, /predict ranks every label."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from app_harness import engine_factory, running
from conftest import random_head
from schema_check import response_validator, schema_errors

from cli.main import main
from models.backbone import Backbone
from server.app import create_app
from server.settings import Settings
from train.data import read_examples
from train.engine_eval import make_engine
from train.evaluate import predict_cached, predict_engine
from train.features import build_cache
from train.kinds import train_kind

WORDS = {"sports": "goal", "politics": "vote", "science": "atom"}
FILLER = ["the", "a", "today", "news", "again"]


def topics_file(path: Path, n: int = 96, seed: int = 0) -> Path:
    """Each text holds the cue word of each of its topics (any subset, none included)."""
    rng = random.Random(seed)
    subsets = [s for r in range(len(WORDS) + 1) for s in itertools.combinations(sorted(WORDS), r)]
    rows = ["text\tlabels"]
    for i in range(n):
        topics = subsets[i % len(subsets)]
        words = [WORDS[t] for t in topics] + rng.sample(FILLER, 2)
        rng.shuffle(words)
        rows.append(f"{' '.join(words)}\t{','.join(topics)}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_train_a_multilabel_head_then_serve_it(
    tmp_path: Path, tiny_roberta: Backbone, tiny_roberta_dir: Path
) -> None:
    (tmp_path / "topics").mkdir()
    data = topics_file(tmp_path / "topics" / "train.tsv")  # metrics: topics_val, topics_train
    heads = tmp_path / "heads"
    argv = ["train", "--task", "topics", "--kind", "multilabel", "--train", str(data)]
    argv += ["--dev", str(data), "--out", str(heads / "topics"), "--backbone"]
    argv += [str(tiny_roberta_dir), "--cache-dir", str(tmp_path / "cache"), "--threads", "1"]
    argv += ["--k", "16", "--ff-dim", "32", "--lr", "0.01", "--batch-tokens", "256"]
    argv += ["--epochs", "6", "--patience", "10", "--val-fraction", "0.25", "--val-block", "8"]
    assert main(argv) == 0

    manifest = json.loads((heads / "topics" / "manifest.json").read_text())
    assert (manifest["kind"], manifest["threshold"]) == ("multilabel", 0.5)
    assert manifest["labels"] == ["politics", "science", "sports"]
    metrics = manifest["metrics"]
    assert {"topics_val_f1", "topics_val_macro_f1", "topics_train_f1", "topics_val_ece"} <= set(
        metrics
    )
    calibration = manifest["training"]["protocol"]["calibration"]
    assert calibration["fitted_on"] == ["topics_val"]  # one temperature, fitted on validation
    assert manifest["temperature"] == calibration["temperature"] != 1.0
    # cue words are learnable: above answering every label (micro F1 2/3 on this data)
    assert metrics["topics_train_f1"] > 0.7

    settings = Settings(backbone=str(tiny_roberta_dir), heads_dir=[heads])
    app = create_app(settings, engine_factory(tiny_roberta))
    texts = ["goal vote the", "news again"]

    async def go() -> tuple[Any, Any, Any, Any]:
        async with running(app) as client:
            analyze = await client.post("/analyze", json={"texts": texts, "tasks": ["topics"]})
            predict = await client.post("/predict/topics", json={"inputs": texts[0]})
            tasks = (await client.get("/tasks")).json()
            openapi = (await client.get("/openapi.json")).json()
            return analyze, predict, tasks, openapi

    analyze, predict, tasks, openapi = asyncio.run(go())
    assert analyze.status_code == 200, analyze.text
    body = analyze.json()
    assert schema_errors(response_validator(openapi, "/analyze", 200), body) == []
    for answer in body["results"]:
        topics = answer["topics"]
        assert list(topics) == ["labels", "scores", "threshold"]
        assert list(topics["scores"]) == ["politics", "science", "sports"]
        assert topics["threshold"] == 0.5
        over = sorted((s, t) for t, s in topics["scores"].items() if s >= 0.5)[::-1]
        assert topics["labels"] == [{"label": t, "score": s} for s, t in over]
    schema = openapi["components"]["schemas"]["MultiLabelAnswer"]
    assert list(schema["properties"]) == ["labels", "scores", "threshold"]
    assert predict.status_code == 200, predict.text
    ranked = predict.json()
    assert [p["label"] for p in ranked] == sorted(
        body["results"][0]["topics"]["scores"],
        key=lambda t: -body["results"][0]["topics"]["scores"][t],
    )
    assert [h["kind"] for h in tasks["heads"]] == ["multilabel"]
    head = tasks["heads"][0]  # /tasks shows what the answers applied
    assert head["threshold"] == 0.5 and head["temperature"] > 0


def test_class_weights_are_refused_for_multilabel_heads(
    tmp_path: Path, tiny_roberta_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = topics_file(tmp_path / "topics.tsv", n=8)
    argv = ["train", "--task", "topics", "--kind", "multilabel", "--train", str(data), "--dev"]
    argv += [str(data), "--out", str(tmp_path / "out"), "--backbone", str(tiny_roberta_dir)]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--class-weights", "balanced"]
    assert main(argv) == 2
    assert "--class-weights is for single-label kinds" in capsys.readouterr().err


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_cached_predictions_and_calibration_rows_are_what_the_engine_answers(
    tmp_path: Path, tiny_roberta: Backbone, pooling: str
) -> None:
    """Training selects on predictions from cached states; they must be the engine's labels,
    long texts (several windows pooled) included, and the calibration rows its scores."""
    data = tmp_path / "topics.tsv"
    data.write_text(
        "text\tlabels\ngoal vote\tsports,politics\natom\tscience\n"
        f"{'goal and vote again ' * 40}\tsports\nnews\t\n"
    )
    examples = read_examples(data)
    info = tiny_roberta.info
    head = random_head(info, "topics", "multilabel", k=16, labels=sorted(WORDS), seed=5)
    head = head.__class__(head.manifest.model_copy(update={"pooling": pooling}))
    with torch.no_grad():
        head.head.classifier.bias.copy_(torch.tensor([0.3, -0.2, 0.05]))
    head.eval()
    split = build_cache(tiny_roberta, examples, head.labels, tmp_path / "cache", 16)
    assert split.num_windows > len(examples)  # the long text has several windows
    cached = predict_cached(head, split, examples, tiny_roberta.tokenizer, info.max_length, 16)
    engine = make_engine(tiny_roberta, head, overlap=16)
    with torch.inference_mode():
        served = predict_engine(engine, head.name, examples, head.labels)
        answers = engine.analyze([e.text for e in examples], [head.name]).results
    assert served == cached
    assert any(cached) and not all(len(c) == len(WORDS) for c in cached)  # not all on or off
    logits, gold = train_kind("multilabel").calibration_data(head, split, examples, "cpu")
    scores = torch.softmax(logits, -1)[:, 1].reshape(len(examples), len(head.labels))
    for row, answer in zip(scores.tolist(), answers, strict=True):
        assert row == pytest.approx(list(answer[head.name].scores.values()), abs=1e-5)
    assert gold == [1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0]  # politics, science, sports per text
