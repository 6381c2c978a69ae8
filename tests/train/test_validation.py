"""The selection protocol: a seeded validation split carved from the training file makes
every choice; dev is scored once, after training, and only reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from train_harness import config, read_log, sentiment_file

from heads.io import load_head
from models.backbone import Backbone
from train.data import TextExample, read_examples
from train.engine_eval import evaluate_head
from train.features import build_cache
from train.loop import dataset_name, train
from train.validation import carve, subset_split


def test_carve_is_seeded_disjoint_complete_and_blocked() -> None:
    train, val = carve(1000, 0.1, seed=3, block=50)
    assert (train, val) == carve(1000, 0.1, seed=3, block=50)  # reproducible
    assert carve(1000, 0.1, seed=4, block=50)[1] != val  # the seed decides
    assert sorted(train + val) == list(range(1000)) and not set(train) & set(val)
    assert len(val) == 100
    starts = [i for i in val if i - 1 not in val]
    assert all(s % 50 == 0 for s in starts)  # whole blocks of consecutive texts


@pytest.mark.parametrize("n", [2, 7, 25])
def test_small_files_still_keep_both_sides(n: int) -> None:
    train, val = carve(n, 0.1, seed=0)
    assert train and val and len(train) + len(val) == n


def test_subset_split_keeps_each_texts_own_states(tmp_path: Path, tiny_roberta: Backbone) -> None:
    examples = [TextExample(f"text number {i} " * (1 + i % 4), str(i % 2)) for i in range(12)]
    split = build_cache(tiny_roberta, examples, ["0", "1"], tmp_path / "cache")
    texts = [1, 4, 5, 11]
    sub = subset_split(split, texts)
    assert sub.num_examples == 4 and sub.labels.tolist() == [split.labels[t] for t in texts]
    alone = build_cache(tiny_roberta, [examples[t] for t in texts], ["0", "1"], tmp_path / "c2")
    assert sub.num_windows == alone.num_windows
    for w in range(sub.num_windows):
        assert np.array_equal(sub.window_states(w), alone.window_states(w))
    assert sub.win_text.tolist() == alone.win_text.tolist()


def flipped(path: Path, source: Path) -> Path:
    """``source`` with every label flipped: a dev file no head selected on it would fit."""
    rows = [json.loads(x) for x in source.read_text().splitlines()]
    for r in rows:
        r["label"] = "positive" if r["label"] == "negative" else "negative"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_training_selects_on_validation_and_scores_dev_once(
    tmp_path: Path, tiny_roberta_dir: Path, tiny_roberta: Backbone
) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=6)
    dev = flipped(tmp_path / "dev.jsonl", data)
    cfg = config(
        tmp_path,
        tiny_roberta_dir,
        "sequence",
        data,
        dev=[str(dev)],
        labels=["negative", "positive"],
        val_fraction=0.2,
        slice_size=0,
    )
    best = train(cfg)
    log = read_log(cfg.out)
    dev_name, val_name = dataset_name(str(dev)), dataset_name(str(data)) + "_val"
    # every evaluation while training looked at the validation split only
    assert all(r["selected_on"] == "val" for r in log)
    assert all(not any(k.startswith(dev_name) for k in r["metrics"]) for r in log)  # type: ignore[union-attr]
    manifest = json.loads((Path(cfg.out) / "manifest.json").read_text())
    protocol = manifest["training"]["protocol"]
    assert protocol["selected_on"] == "val" and protocol["dev_scored"].startswith("once")
    held = manifest["training"]["validation"][0]
    assert held["val"] == 12 and held["train"] == 48
    assert manifest["training"]["train_examples"] == [48]
    # the kept head is the best on validation; dev was scored with it, once, and recorded
    assert max(float(r["selection"]) for r in log) == pytest.approx(
        manifest["metrics"][f"{val_name}_accuracy"]
    )
    engine = evaluate_head(cfg.out, read_examples(dev), tiny_roberta)
    assert manifest["metrics"][f"{dev_name}_accuracy"] == pytest.approx(engine["accuracy"])
    assert best["dev"][dev_name]["accuracy"] == pytest.approx(engine["accuracy"])
    # the flipped dev set did not steer the run: the head fits the training labels
    assert manifest["metrics"][f"{val_name}_accuracy"] > 0.8 > engine["accuracy"]
    assert (Path(cfg.out) / "reliability.png").is_file()
    assert load_head(cfg.out).manifest.temperature == protocol["calibration"]["temperature"]


def test_legacy_runs_say_they_selected_on_dev(tmp_path: Path, tiny_roberta_dir: Path) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl")
    cfg = config(
        tmp_path, tiny_roberta_dir, "sequence", data, labels=["negative", "positive"], epochs=1
    )
    train(cfg)
    manifest = json.loads((Path(cfg.out) / "manifest.json").read_text())
    assert manifest["training"]["protocol"]["selected_on"] == "dev"
    assert manifest["temperature"] == 1.0  # nothing to calibrate on
