"""--ema: the moving average of the weights is what is scored, saved and resumed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import random_head
from safetensors.torch import load_file
from train_harness import config, read_log, sentiment_file

from heads.io import load_head
from models.backbone import Backbone
from train.averaging import weight_average
from train.checkpoint import STATE_DIR
from train.data import read_examples
from train.engine_eval import evaluate_head
from train.loop import dataset_name, train


def test_saved_head_is_the_average_and_the_engine_agrees(
    tmp_path: Path, tiny_roberta_dir: Path, tiny_roberta: Backbone
) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl")
    cfg = config(tmp_path, tiny_roberta_dir, "sequence", data, epochs=1, ema=0.8)
    best = train(cfg)
    state = load_file(str(Path(cfg.out) / STATE_DIR / "state.safetensors"))
    saved = load_head(cfg.out).state_dict()
    name = "head.classifier.weight"
    torch.testing.assert_close(saved[name], state[f"ema.module.{name}"])
    assert not torch.allclose(saved[name], state[f"model.{name}"])
    assert int(state["ema.n_averaged"]) == read_log(cfg.out)[-1]["step"]
    engine = evaluate_head(cfg.out, read_examples(data), tiny_roberta)
    assert engine["correct"] == best[dataset_name(str(data))]["correct"]


def test_resume_continues_the_average(tmp_path: Path, tiny_roberta_dir: Path) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=1)
    train(config(tmp_path, tiny_roberta_dir, "sequence", data, epochs=1, ema=0.9))
    steps = read_log(str(tmp_path / "head"))[-1]["step"]
    train(config(tmp_path, tiny_roberta_dir, "sequence", data, epochs=2, ema=0.9, resume=True))
    state = load_file(str(tmp_path / "head" / STATE_DIR / "state.safetensors"))
    assert int(state["ema.n_averaged"]) == read_log(str(tmp_path / "head"))[-1]["step"] > steps


def test_resuming_a_run_without_average_with_ema_is_refused(
    tmp_path: Path, tiny_roberta_dir: Path
) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=1)
    train(config(tmp_path, tiny_roberta_dir, "sequence", data, epochs=1))
    with pytest.raises(ValueError, match="no weight average"):
        train(config(tmp_path, tiny_roberta_dir, "sequence", data, epochs=2, ema=0.9, resume=True))


def test_resuming_an_averaged_run_without_ema_is_refused(
    tmp_path: Path, tiny_roberta_dir: Path
) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=1)
    train(config(tmp_path, tiny_roberta_dir, "sequence", data, epochs=1, ema=0.9))
    with pytest.raises(ValueError, match="holds a weight average"):
        train(config(tmp_path, tiny_roberta_dir, "sequence", data, epochs=2, resume=True))


@pytest.mark.parametrize("decay", [1.0, -0.5, 2.0])
def test_a_decay_outside_0_1_is_refused(tiny_roberta: Backbone, decay: float) -> None:
    with pytest.raises(ValueError, match="--ema takes a decay"):
        weight_average(random_head(tiny_roberta.info, "toy"), decay)
