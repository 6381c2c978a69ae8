"""The /analyze JSON is the same bytes it was when answers were plain dicts.

Answers became records (heads/answers.py) that orjson writes as they are; clients parse
the bytes, so the key order, the float formatting and the absence of any extra key must not
change. The dict layout below is the one the engine built before the records (spelled out
key by key), serialised the way the route did it.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import torch
from app_harness import NER_LABELS
from conftest import random_head

from engine.core import Engine, EngineConfig
from engine.prepared import AnalyzeResult
from engine.settings import EngineSettings
from heads.answers import ClassAnswer, Entity, MultiLabelAnswer
from heads.registry import HeadSet
from models.backbone import Backbone

TEXTS = [
    "Angela Merkel visited Paris.",
    "  leading   and   repeated   spaces  ",
    "Emoji 👩‍👩‍👧 family, ZWJ\u200dand CJK 東京 and RTL עברית text!",
    "",
    "word " * 100,  # several windows
]


def _engine(backbone: Backbone) -> Engine:
    info = backbone.info
    heads = {
        "sentiment": random_head(info, "sentiment", k=16, seed=1),
        "ner": random_head(info, "ner", "token", k=16, labels=NER_LABELS, seed=2),
        "topics": random_head(info, "topics", "multilabel", labels=["a", "b", "c"], seed=3),
    }
    heads["topics"].manifest.threshold = 0.3
    with torch.no_grad():  # many entities, so the spans are exercised
        heads["ner"].head.classifier.bias.copy_(torch.tensor([-2.0, 1.0, 1.0, 1.0, 1.0]))
    return Engine(
        backbone, HeadSet(heads), EngineConfig.from_settings(EngineSettings(window_overlap=16))
    )


def _as_dicts(value: Any) -> Any:
    """Today's layout of one answer, written key by key."""
    if isinstance(value, ClassAnswer):
        return {"label": value.label, "score": value.score, "scores": value.scores}
    if isinstance(value, MultiLabelAnswer):
        chosen = [{"label": x.label, "score": x.score} for x in value.labels]
        return {"labels": chosen, "scores": value.scores, "threshold": value.threshold}
    if isinstance(value, list) and value and isinstance(value[0], Entity):
        return [
            {"text": e.text, "label": e.label, "start": e.start, "end": e.end, "score": e.score}
            for e in value
        ]
    return value


def _legacy_bytes(result: AnalyzeResult, backbone: str) -> bytes:
    return orjson.dumps(
        {
            "results": [{t: _as_dicts(v) for t, v in a.items()} for a in result.results],
            "backbone": backbone,
            "usage": {"tokens": result.tokens, "layers_run": result.layers_run},
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


@pytest.mark.parametrize("name", ["tiny_roberta", "tiny_bart"])
def test_payload_bytes_are_the_dict_layout_of_before(
    name: str, request: pytest.FixtureRequest
) -> None:
    backbone: Backbone = request.getfixturevalue(name)
    engine = _engine(backbone)
    main = engine.main_task
    for tasks in (None, ["ner"], [main], ["topics", "ner", main, "sentiment"]):
        result = engine.analyze(TEXTS, tasks)
        body = result.payload_json(backbone.info.name)
        assert body == _legacy_bytes(result, backbone.info.name), tasks
    kinds = {type(v) for a in result.results for v in a.values()}
    assert {ClassAnswer, MultiLabelAnswer, list, type(result.results[0][main])} <= kinds
    assert any(a["ner"] for a in result.results)


def test_typed_accessors_refuse_the_wrong_kind(tiny_roberta: Backbone) -> None:
    result = _engine(tiny_roberta).analyze(TEXTS[:2], ["sentiment", "ner", "embedding"])
    assert [a.label for a in result.class_answers("sentiment")] == [
        a["sentiment"].label  # type: ignore[union-attr]
        for a in result.results
    ]
    assert [len(v) for v in result.embeddings("embedding")] == [64, 64]
    with pytest.raises(TypeError, match="not a class answer"):
        result.class_answers("ner")
    with pytest.raises(TypeError, match="not an embedding"):
        result.embeddings("sentiment")
