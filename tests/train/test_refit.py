"""--refit: the budget is chosen on the validation split, then a new head trains on every
text for that budget (learning rates replayed, no early stopping) and is the one saved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_harness import config, ner_file, read_log, sentiment_file

from heads.io import load_head, read_manifest
from models.backbone import Backbone
from train.config import ConfigError
from train.data import read_examples
from train.engine_eval import evaluate_head
from train.loop import dataset_name, train
from train.refit import SELECTION_DIR, budget
from train.validation import val_name


def test_budget_runs_to_the_last_improvement_with_its_learning_rates() -> None:
    log = [
        {"event": "eval", "improved": True, "lr": 0.01},
        {"event": "eval", "improved": False, "lr": 0.005},
        {"event": "eval", "improved": True, "lr": 0.005},
        {"event": "eval", "improved": False, "lr": 0.0025},
        {"event": "eval", "improved": False, "lr": 0.00125},
    ]
    assert budget(log) == (3, [0.01, 0.005, 0.005])


def test_a_fixed_budget_replays_the_learning_rates_and_holds_the_last() -> None:
    log = [
        {"event": "eval", "improved": True, "lr": 0.01},
        {"event": "eval", "improved": False, "lr": 0.005},
    ]
    assert budget(log, 1) == (1, [0.01])
    assert budget(log, 4) == (4, [0.01, 0.005, 0.005, 0.005])


def test_a_selection_run_that_kept_nothing_cannot_be_refit() -> None:
    with pytest.raises(ValueError, match="kept no head"):
        budget([{"event": "eval", "improved": False, "lr": 0.01}])


def test_refit_trains_on_every_text_for_the_chosen_budget(
    tmp_path: Path, tiny_roberta_dir: Path, tiny_roberta: Backbone
) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=4)  # 40 texts, 8 held out
    cfg = config(
        tmp_path, tiny_roberta_dir, "sequence", data, val_fraction=0.2, epochs=5, ema=0.8,
        refit=True,
    )  # fmt: skip
    best = train(cfg)
    out = Path(cfg.out)
    selection = read_manifest(out / SELECTION_DIR)
    refitted = read_manifest(out)
    assert selection.training["train_examples"] == [32]
    assert refitted.training["train_examples"] == [40]  # validation texts included
    chosen = read_log(str(out / SELECTION_DIR))
    points, lrs = budget(chosen)
    assert points < len(chosen)  # the selection run went on past the point it kept
    replay = read_log(cfg.out)
    assert [r["lr"] for r in replay] == lrs and len(replay) == points
    assert replay[-1]["epoch"] == chosen[points - 1]["epoch"]  # same passes over the data
    assert refitted.training["refit"]["steps"] == replay[-1]["step"]
    assert replay[-1]["step"] > selection.training["best_step"]  # more texts per pass
    assert selection.temperature != 1.0 and refitted.temperature == selection.temperature
    a, b = load_head(out).state_dict(), load_head(out / SELECTION_DIR).state_dict()
    assert not torch.allclose(a["head.classifier.weight"], b["head.classifier.weight"])
    engine = evaluate_head(out, read_examples(data), tiny_roberta)
    name = dataset_name(str(data))  # the dev file is the training file here
    assert engine["correct"] == refitted.metrics[f"{name}_correct"]  # dev of the refit head
    assert best["dev"][name]["correct"] == engine["correct"]
    val = f"{val_name(name)}_accuracy"
    assert refitted.metrics[f"selection_{val}"] == selection.metrics[val]
    assert val not in refitted.metrics  # it trained on those texts


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"val_fraction": 0.0}, "needs a validation split"),
        ({"resume": True}, "cannot --resume"),
        ({"refit_epochs": 5}, "--refit-epochs takes a count in 1..--epochs"),
        ({"refit": False, "refit_epochs": 2}, "needs --refit"),
    ],
)
def test_refit_without_a_validation_split_or_resumed_is_refused(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl")
    with pytest.raises(ConfigError, match=message):
        config(
            tmp_path, tmp_path, "sequence", data, **{"val_fraction": 0.2, "refit": True, **change}
        )


def test_a_token_head_with_case_features_refits(tmp_path: Path, tiny_roberta_dir: Path) -> None:
    data = ner_file(tmp_path / "toy.jsonl")  # 12 sentences, 3 held out
    cfg = config(
        tmp_path, tiny_roberta_dir, "token", data, val_fraction=0.25, epochs=3, refit=True,
        case_features=True,
    )  # fmt: skip
    train(cfg)
    refitted = read_manifest(cfg.out)
    assert refitted.training["train_examples"] == [12]
    assert read_manifest(Path(cfg.out) / SELECTION_DIR).training["train_examples"] == [9]
    assert refitted.case_features
    name = dataset_name(str(data))  # dev scored once with the refit head, both decodings
    assert {f"{name}_f1", f"{name}_viterbi_f1"} <= set(refitted.metrics)


def test_refit_epochs_sets_the_passes_whatever_the_selection_kept(
    tmp_path: Path, tiny_roberta_dir: Path
) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=4)
    cfg = config(
        tmp_path, tiny_roberta_dir, "sequence", data, val_fraction=0.2, epochs=4, refit=True,
        refit_epochs=4,
    )  # fmt: skip
    train(cfg)
    replay = read_log(cfg.out)
    assert [r["epoch"] for r in replay] == [1, 2, 3, 4]
    chosen = read_log(str(Path(cfg.out) / SELECTION_DIR))
    assert [r["lr"] for r in replay] == [r["lr"] for r in chosen]
    assert read_manifest(cfg.out).training["refit"]["budget"].startswith("4 epochs")
