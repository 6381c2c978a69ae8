"""Head kinds: each manifest kind resolves to one object that builds, merges and answers; a
kind's options are refused on the others; the multi-label kind answers through the engine."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import random_head
from pydantic import ValidationError

from engine.core import AnalyzeRequest, Engine, EngineConfig
from engine.settings import EngineSettings
from heads.answers import LabelScore, MultiLabelAnswer
from heads.kinds import KINDS, kind_for
from heads.kinds.multilabel import multilabel_answer
from heads.manifest import HeadManifest
from heads.registry import HeadSet
from heads.task_head import fingerprint_of
from models.backbone import Backbone

TOPICS = ["sports", "politics", "science"]


def _manifest(tiny_roberta: Backbone, **fields: object) -> HeadManifest:
    base: dict[str, object] = dict(
        name="t",
        kind="sequence",
        labels=["a", "b"],
        k=8,
        layer_logits=[0.0] * tiny_roberta.info.num_states,
        backbone=fingerprint_of(tiny_roberta.info),
    )
    return HeadManifest(**{**base, **fields})  # type: ignore[arg-type]


def test_every_kind_is_found_by_its_manifest_name_and_an_unknown_one_lists_them() -> None:
    assert [kind_for(name).name for name in KINDS] == ["sequence", "token", "multilabel"]
    with pytest.raises(ValueError, match="unknown head kind 'regression'; known: sequence, token"):
        kind_for("regression")


@pytest.mark.parametrize(
    ("kind", "option", "value", "message"),
    [
        ("token", "pooling", "max", "pooling is for sequence or multilabel heads only, not token"),
        ("token", "block", "encoder", "block is for sequence or multilabel heads only"),
        ("sequence", "case_features", True, "case_features is for token heads only"),
        ("multilabel", "case_features", True, "case_features is for token heads only"),
        ("sequence", "threshold", 0.3, "threshold is for multilabel heads only, not sequence"),
        ("token", "threshold", 0.3, "threshold is for multilabel heads only, not token"),
    ],
)
def test_options_of_other_kinds_are_refused(
    tiny_roberta: Backbone, kind: str, option: str, value: object, message: str
) -> None:
    labels = ["O", "B-X", "I-X"] if kind == "token" else ["a", "b"]
    with pytest.raises(ValidationError, match=message):
        _manifest(tiny_roberta, kind=kind, labels=labels, **{option: value})


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.2, 1.5])
def test_threshold_must_lie_strictly_between_0_and_1(
    tiny_roberta: Backbone, threshold: float
) -> None:
    with pytest.raises(ValidationError, match="threshold"):
        _manifest(tiny_roberta, kind="multilabel", threshold=threshold)


def test_a_multilabel_manifest_keeps_its_options(tiny_roberta: Backbone) -> None:
    m = _manifest(tiny_roberta, kind="multilabel", threshold=0.3, pooling="max", block="encoder")
    assert (m.kind, m.threshold, m.pooling, m.block) == ("multilabel", 0.3, "max", "encoder")
    assert _manifest(tiny_roberta, kind="multilabel").threshold == 0.5  # the default


def test_multilabel_answer_lists_the_labels_at_or_over_the_threshold_most_likely_first() -> None:
    answer = multilabel_answer(torch.tensor([0.5, 0.25, 0.75]), TOPICS, 0.5)
    assert answer == MultiLabelAnswer(
        labels=[LabelScore("science", 0.75), LabelScore("sports", 0.5)],
        scores={"sports": 0.5, "politics": 0.25, "science": 0.75},
        threshold=0.5,
    )
    assert multilabel_answer(torch.tensor([0.1, 0.2, 0.3]), TOPICS, 0.5).labels == []


def _log_odds(p: float) -> float:
    return math.log(p / (1 - p))


def test_the_engine_answers_a_multilabel_head_with_a_sigmoid_per_label_over_the_whole_text(
    tiny_roberta: Backbone,
) -> None:
    """The multi-label head pools a long text's windows as a sequence head does: with the same
    weights, its per-label log-odds differ by exactly the sequence head's log-ratios."""
    info = tiny_roberta.info
    single = random_head(info, "single", "sequence", k=16, labels=TOPICS, seed=3)
    multi = random_head(info, "multi", "multilabel", k=16, labels=TOPICS, seed=3)
    with torch.no_grad():
        multi.head.classifier.bias.copy_(torch.tensor([4.0, -4.0, 0.0]))
        single.head.classifier.bias.copy_(torch.tensor([4.0, -4.0, 0.0]))
    config = EngineConfig.from_settings(EngineSettings(window_overlap=16, kernel="torch"))
    engine = Engine(tiny_roberta, HeadSet({"single": single, "multi": multi}), config)
    text = "word and other words " * 60  # several windows of the 64-token fixture
    assert len(engine.prepare(AnalyzeRequest([text], ["multi"])).windows) > 1
    answer = engine.analyze([text]).results[0]
    got, ref = answer["multi"], answer["single"]
    assert isinstance(got, MultiLabelAnswer)
    assert list(got.scores) == TOPICS and got.threshold == 0.5
    for a in TOPICS:
        for b in TOPICS:
            expected = math.log(ref.scores[a] / ref.scores[b])  # type: ignore[union-attr]
            assert _log_odds(got.scores[a]) - _log_odds(got.scores[b]) == pytest.approx(
                expected, abs=1e-3
            )
    chosen = [x.label for x in got.labels]
    assert chosen == sorted(
        (t for t in TOPICS if got.scores[t] >= 0.5), key=lambda t: -got.scores[t]
    )
    assert "sports" in chosen and "politics" not in chosen  # the biases decide these two
