"""The length rule that joins a short-text and a long-text head is chosen on validation:
it sends each text to the head that is right on texts of its length."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_harness import sentiment_file, train_sentiment_head

from train.loop import dataset_name
from train.route import Routed, main, pick_threshold


def test_rule_splits_at_the_gap_between_short_and_long_texts() -> None:
    # short texts (<= 20 tokens): only the short head is right; reviews (>= 60): only the long one
    sentences = Routed("sst2_val", [5, 12, 20], [True, True, True], [False, False, False])
    reviews = Routed("imdb_val", [60, 300, 900], [False, False, False], [True, True, True])
    n = pick_threshold([sentences, reviews])
    assert 20 <= n < 60 and n == (20 + 60 - 1) / 2  # the middle of the range that ties
    assert sentences.accuracy(n) == reviews.accuracy(n) == 1.0


def test_long_head_everywhere_when_it_is_never_worse() -> None:
    mixed = Routed("val", [5, 50, 500], [False, False, False], [True, True, True])
    assert pick_threshold([mixed]) < 5  # nothing goes to the short head
    assert mixed.accuracy(pick_threshold([mixed])) == 1.0


def test_mean_over_sets_not_over_texts() -> None:
    # 1 short text the short head gets right vs 4 long texts it gets wrong in another set:
    # per set, routing the short text gains that set 1.0 and costs nothing elsewhere
    a = Routed("a", [3], [True], [False])
    b = Routed("b", [10, 10, 10, 10], [False] * 4, [True] * 4)
    n = pick_threshold([a, b])
    assert 3 <= n < 10
    assert (a.accuracy(n), b.accuracy(n)) == (1.0, 1.0)


def test_route_command_chooses_on_validation_and_scores_dev_once(
    tmp_path: Path, tiny_roberta_dir: Path
) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=6)
    runs = [
        train_sentiment_head(
            tmp_path, tiny_roberta_dir, data, name, val_fraction=0.2, epochs=1, seed=seed
        )
        for seed, name in enumerate(("short", "long"))
    ]
    report = tmp_path / "route.json"
    assert main(["--short", runs[0], "--long", runs[1], "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    val, dev = dataset_name(str(data)) + "_val", dataset_name(str(data))
    assert result["chosen_on"] == [val]
    assert set(result["dev"]) == {dev} and 0.0 <= result["dev"][dev] <= 1.0
    metrics = [json.loads((Path(r) / "manifest.json").read_text())["metrics"] for r in runs]
    # on validation the rule is at least as good as either head alone (both share the split)
    assert result["val"][val] >= max(m[f"{val}_accuracy"] for m in metrics) - 1e-9
    # each head alone scores dev as its own run recorded it
    assert result["dev_short_only"][dev] == pytest.approx(metrics[0][f"{dev}_accuracy"])
    assert result["dev_long_only"][dev] == pytest.approx(metrics[1][f"{dev}_accuracy"])
