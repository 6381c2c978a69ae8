"""Case views: NER is scored (and can be trained) on lower-cased and upper-cased text too,
because chat and queries arrive lower case and headlines ALL CAPS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_harness import config, ner_file

from heads.casing import LOWER, SPECIAL, TITLE, UPPER
from models.backbone import Backbone
from train.batches import Batch
from train.data import TextExample, TokenExample, case_view, read_examples
from train.engine_eval import evaluate_head, evaluate_views
from train.loop import train
from train.objective import recase_some


def test_views_change_case_only() -> None:
    ex = [
        TokenExample(("Straße", "in", "NYC"), ("B-LOC", "O", "B-LOC")),
        TextExample("Hi Bob", "1"),
    ]
    lower, upper = case_view(ex, "lower"), case_view(ex, "upper")
    assert lower[0] == TokenExample(("straße", "in", "nyc"), ("B-LOC", "O", "B-LOC"))
    # "ß" upper-cases to two letters; it is kept so words and offsets stay where they were
    assert upper[0].tokens == ("STRAßE", "IN", "NYC") and upper[1] == TextExample("HI BOB", "1")
    assert case_view(ex, "as-is") == ex
    with pytest.raises(ValueError, match="unknown case view"):
        case_view(ex, "title")


def test_upper_case_augmentation_shows_some_windows_upper_cased() -> None:
    case = torch.tensor([[SPECIAL, TITLE, LOWER, UPPER, SPECIAL]] * 400)
    upper = torch.tensor([[SPECIAL, UPPER, UPPER, UPPER, SPECIAL]] * 400)
    batch = Batch(
        torch.zeros(1),
        torch.ones(400, 5),
        torch.zeros(1),
        torch.zeros(1),
        torch.zeros(1),
        case,
        upper,
    )
    out = recase_some(batch, 0.25, 0.25, seed=7)
    assert out.case_ids is not None
    rows = {tuple(r) for r in out.case_ids.tolist()}
    assert rows == {
        (SPECIAL, TITLE, LOWER, UPPER, SPECIAL),
        (SPECIAL, LOWER, LOWER, LOWER, SPECIAL),
        (SPECIAL, UPPER, UPPER, UPPER, SPECIAL),
    }
    lowered = (out.case_ids[:, 1] == LOWER).float().mean()
    uppered = (out.case_ids[:, 2] == UPPER).float().mean()
    assert 0.18 < lowered < 0.32 and 0.18 < uppered < 0.32
    assert torch.equal(recase_some(batch, 0.25, 0.25, seed=7).case_ids, out.case_ids)


def test_eval_views_score_each_casing_and_their_mean(
    tmp_path: Path, tiny_roberta_dir: Path, tiny_roberta: Backbone
) -> None:
    data = ner_file(tmp_path / "ner.jsonl")
    cfg = config(tmp_path, tiny_roberta_dir, "token", data, epochs=1, case_features=True)
    train(cfg)
    examples = read_examples(data)
    result = evaluate_views(cfg.out, examples, tiny_roberta, ["as-is", "lower", "upper"])
    assert result["metric"] == "f1"
    for view in ("lower", "upper"):
        alone = evaluate_head(cfg.out, case_view(examples, view), tiny_roberta)
        assert result["views"][view]["f1"] == pytest.approx(alone["f1"])
    mean = sum(result["views"][v]["f1"] for v in result["views"]) / 3
    assert result["mean"] == pytest.approx(mean)


def test_training_with_case_augmentation_and_case_selection(
    tmp_path: Path, tiny_roberta_dir: Path
) -> None:
    data = ner_file(tmp_path / "ner.jsonl")
    cfg = config(
        tmp_path,
        tiny_roberta_dir,
        "token",
        data,
        epochs=2,
        case_features=True,
        case_dropout=0.2,
        case_upper=0.2,
        select_case="all",
    )
    with pytest.raises(ValueError, match="ignores case"):
        train(cfg)  # the tiny RoBERTa is cased: cached states cannot stand for other casings


def test_sidetask_eval_case_all_writes_every_view_and_the_mean(
    tmp_path: Path, tiny_roberta_dir: Path, tiny_roberta: Backbone
) -> None:
    from conftest import random_head

    from cli.main import parse_args
    from heads.io import save_head

    data = ner_file(tmp_path / "ner.jsonl")
    head = random_head(tiny_roberta.info, "toy", kind="token", labels=["O", "B-LOC", "B-PER"])
    folder = save_head(head, tmp_path / "head")
    out = tmp_path / "views.json"
    argv = [
        "eval",
        "--head",
        str(folder),
        "--data",
        str(data),
        "--backbone",
        str(tiny_roberta_dir),
        "--case",
        "all",
        "--json",
        str(out),
        "--threads",
        "1",
    ]
    args = parse_args(argv)
    assert args.func(args) == 0
    written = json.loads(out.read_text())
    assert set(written["views"]) == {"as-is", "lower", "upper"} and written["metric"] == "f1"
    views = [
        evaluate_head(folder, case_view(read_examples(data), v), tiny_roberta)["f1"]
        for v in ("as-is", "lower", "upper")
    ]
    assert written["mean"] == pytest.approx(sum(views) / 3)
