"""A training config refuses a setting that cannot work when it is built, before any model
or data is loaded, with a message that names the flag to fix."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from train_harness import config, ner_file, sentiment_file

from train.config import ConfigError, TrainConfig
from train.loop import train


def make(**kw: object) -> TrainConfig:
    base: dict[str, object] = dict(task="t", kind="sequence", train=["a"], dev=["d"], out="o")
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


TOKEN_CASED = dict(kind="token", case_features=True)

BROKEN = [
    (dict(kind="token", pooling="max"), "--pooling is for sequence or multilabel heads"),
    (dict(kind="token", block="encoder"), "--block is for sequence or multilabel heads"),
    (dict(label_smoothing=1.0), "--label-smoothing takes a share in [0, 1), got 1.0"),
    (dict(label_smoothing=-0.1), "--label-smoothing takes a share"),
    (dict(lr_patience=-1), "--lr-patience takes a count >= 0, got -1"),
    (dict(ema=1.0), "--ema takes a decay in (0, 1)"),
    (dict(ema=-0.5), "--ema takes a decay in (0, 1)"),
    (dict(case_features=True), "--case-features is for token heads"),
    (dict(kind="regression"), "--kind takes one of sequence, token, multilabel"),
    (dict(threshold=0.3), "--threshold is for multilabel heads (--kind multilabel) only"),
    (dict(kind="multilabel", threshold=1.0), "--threshold takes a score in (0, 1), got 1.0"),
    (dict(kind="multilabel", case_features=True), "--case-features is for token heads"),
    (dict(metric="f1"), "--metric f1 is not a sequence metric: accuracy, mcc"),
    (dict(kind="multilabel", metric="mcc"), "--metric mcc is not a multilabel metric"),
    (dict(kind="token", case_dropout=0.3), "--case-dropout takes a share in (0, 1) and needs"),
    (dict(**TOKEN_CASED, case_dropout=1.0), "--case-dropout takes a share in (0, 1)"),
    (dict(kind="token", case_upper=0.2), "--case-upper takes a share"),
    (dict(**TOKEN_CASED, case_dropout=0.5, case_upper=0.5), "--case-upper takes a share"),
    (dict(**TOKEN_CASED, select_case="title"), "--select-case takes as-is or all, got 'title'"),
    (dict(kind="token", select_case="all"), "--select-case all is for token heads with"),
    (dict(train=["a", "b", "c"], max_examples=[1, 2]), "--max-examples takes one value or one"),
    (dict(train=["a", "b"], train_weights=[1.0]), "--train-weights takes one weight per"),
    (dict(train=["a", "b"], train_weights=[1.0, 0.0]), "--train-weights must be positive"),
    (dict(val_fraction=0.5), "--val-fraction takes a share in [0, 0.5), got 0.5"),
    (dict(val_fraction=-0.1), "--val-fraction takes a share"),
    (dict(class_weights=["heavy", "1"]), "--class-weights takes 'balanced' or one number"),
    (dict(class_weights=["0", "1"]), "--class-weights must be positive"),
    (
        dict(labels=["neg", "pos"], class_weights=["1", "2", "3"]),
        "--class-weights takes one weight per label (2: neg, pos), got 3",
    ),
]


@pytest.mark.parametrize(("options", "message"), BROKEN, ids=[m for _, m in BROKEN])
def test_a_broken_setting_is_refused_naming_its_flag(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        make(**options)
    assert isinstance(caught.value, ConfigError)


@pytest.mark.parametrize(
    "options",
    [
        dict(**TOKEN_CASED, case_dropout=0.3, case_upper=0.3, select_case="all"),
        dict(pooling="max", block="encoder", label_smoothing=0.1, ema=0.99, lr_patience=2),
        dict(train=["a", "b"], max_examples=[5], train_weights=[1.0, 0.5], val_fraction=0.0),
        dict(train=["a", "b"], max_examples=[5, 6], class_weights=["balanced"]),
        dict(class_weights=["1", "2", "3"]),  # the count waits for the labels in the data
    ],
)
def test_settings_that_work_are_accepted(options: dict[str, object]) -> None:
    make(**options)


def test_the_recorded_config_rebuilds_the_same_config() -> None:
    """The manifest records ``to_dict()``: it is plain JSON and builds the same config."""
    cfg = make(kind="token", case_features=True, case_upper=0.2, class_weights=["balanced"])
    recorded = json.loads(json.dumps(cfg.to_dict()))
    assert recorded == dataclasses.asdict(cfg)
    assert TrainConfig(**recorded) == cfg


def test_a_built_config_cannot_be_changed_into_a_broken_one() -> None:
    cfg = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.ema = 2.0  # type: ignore[misc]
    with pytest.raises(ConfigError, match="--ema"):
        dataclasses.replace(cfg, ema=2.0)


def test_a_kind_the_data_does_not_have_is_refused_before_training(
    tmp_path: Path, tiny_roberta_dir: Path
) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=1)
    cfg = config(tmp_path, tiny_roberta_dir, "token", data)
    with pytest.raises(ConfigError, match="--kind token does not match the training data"):
        train(cfg)
    assert not (Path(cfg.out) / "head.safetensors").exists()


def test_class_weights_are_counted_against_the_labels_read_from_the_data(
    tmp_path: Path, tiny_roberta_dir: Path
) -> None:
    data = ner_file(tmp_path / "ner.jsonl")
    cfg = config(tmp_path, tiny_roberta_dir, "token", data, class_weights=["1", "2"])
    with pytest.raises(ConfigError, match=r"--class-weights takes one weight per label \(5:"):
        train(cfg)
