"""Metrics agree with scikit-learn and seqeval on hand-made cases."""

from __future__ import annotations

import pytest
from seqeval.metrics import f1_score, precision_score, recall_score
from sklearn.metrics import matthews_corrcoef

from heads.answers import Entity
from train.metrics import (
    classification_metrics,
    entities_to_tags,
    format_table,
    multilabel_metrics,
    ner_metrics,
)


def test_classification_metrics_match_sklearn() -> None:
    y_true = [0, 1, 1, 0, 1, 1, 0, 0]
    y_pred = [0, 1, 0, 0, 1, 1, 1, 0]
    m = classification_metrics(y_true, y_pred, ["neg", "pos"])
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["correct"] == 6 and m["n"] == 8
    assert m["mcc"] == pytest.approx(matthews_corrcoef(y_true, y_pred))
    assert m["confusion"] == [[3, 1], [1, 3]]
    assert "accuracy 0.7500" in format_table(m)


def test_ner_metrics_match_seqeval() -> None:
    y_true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    y_pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
    m = ner_metrics(y_true, y_pred)
    assert m["f1"] == pytest.approx(f1_score(y_true, y_pred))
    assert m["precision"] == pytest.approx(precision_score(y_true, y_pred))
    assert m["recall"] == pytest.approx(recall_score(y_true, y_pred))
    assert m["per_type"]["PER"]["f1"] == 1.0
    assert m["per_type"]["LOC"]["recall"] == 0.0
    assert "LOC" in format_table(m)


def test_entity_spans_map_back_to_words() -> None:
    tokens = ["U.S.", "envoy", "John", "Smith", "left"]
    # "U.S. envoy John Smith left": U.S. = 0..4, John Smith = 11..21
    ents = [Entity("U.S.", "LOC", 0, 4, 0.9), Entity("John Smith", "PER", 11, 21, 0.8)]
    assert entities_to_tags(tokens, ents) == ["B-LOC", "O", "B-PER", "I-PER", "O"]


def test_multilabel_metrics_count_micro_and_macro_f1_by_hand() -> None:
    """Label x: 2 true, both found, 1 false alarm (P 2/3, R 1, F1 0.8); label y: 1 true, missed
    (F1 0); label z: never true nor predicted (F1 0, in the macro mean)."""
    truth = [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
    pred = [[1, 0, 0], [1, 0, 0], [1, 0, 0]]
    m = multilabel_metrics(truth, pred, ["x", "y", "z"])
    # micro: tp 2, fp 1, fn 1 -> P 2/3, R 2/3, F1 2/3
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert m["macro_f1"] == pytest.approx((0.8 + 0 + 0) / 3)
    assert m["accuracy"] == pytest.approx(1 / 3)  # only the first text has every label right
    assert m["per_label"]["x"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert m["n"] == 3
    table = format_table(m)
    assert "macro F1 0.2667" in table and table.splitlines()[2].startswith("x ")
