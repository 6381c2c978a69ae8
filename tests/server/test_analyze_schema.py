"""POST /analyze's raw bodies, answers and errors alike, match the schema the app publishes.

The route returns the engine's JSON bytes as they are (FastAPI does not validate a returned
Response against ``response_model``), so these tests are what holds the bytes to the
contract: every task kind (sequence, token, multi-label, the main task of an encoder and of
BART), every error status a client can provoke, and no key the schema does not document.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from app_harness import engine_factory, running, save_tiny_heads
from conftest import random_head
from schema_check import response_validator, schema_errors

from engine.prepared import AnalyzePayload, Usage
from heads import answers
from heads.io import save_head
from models.backbone import Backbone
from server import schemas
from server.app import create_app
from server.settings import Settings

TEXTS = [
    "Angela Merkel visited Paris.",
    "Émile met 東京 friends 👩‍👩‍👧 in  New York",
    "",
    "word " * 80,  # several windows
]


def _bodies(app: Any, requests: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
    async def go() -> tuple[dict[str, Any], list[Any]]:
        async with running(app) as c:
            openapi = (await c.get("/openapi.json")).json()
            out = []
            for body in requests:
                r = await c.post("/analyze", json=body)
                assert r.status_code == 200, r.text
                assert r.headers["content-type"] == "application/json"
                out.append(r.json())
            return openapi, out

    return asyncio.run(go())


@pytest.mark.parametrize("backbone", ["tiny_roberta", "tiny_bart"])
def test_answers_of_every_task_kind_match_the_published_schema(
    backbone: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    model: Backbone = request.getfixturevalue(backbone)
    folder: Path = request.getfixturevalue(backbone + "_dir")
    heads = save_tiny_heads(model.info, tmp_path / "heads")
    topics = random_head(model.info, "topics", "multilabel", labels=["sport", "politics", "art"])
    topics.manifest.threshold = 0.3  # random weights: some labels over it, some under
    save_head(topics, heads / "topics")
    settings = Settings(backbone=str(folder), heads_dir=[heads], generate_max_length=6)
    app = create_app(settings, engine_factory(model))
    main = model.info.main_task
    asked = [None, ["sentiment"], ["ner"], ["topics"], [main], ["ner", main, "topics", "sentiment"]]
    openapi, bodies = _bodies(app, [{"texts": TEXTS, "tasks": t} for t in asked])
    validator = response_validator(openapi, "/analyze", 200)
    for tasks, body in zip(asked, bodies, strict=True):
        assert schema_errors(validator, body) == [], tasks
        expected = sorted(tasks or ["ner", "sentiment", "topics"], key=lambda t: (t == main, t))
        assert all(list(answer) == expected for answer in body["results"])
    every = bodies[-1]["results"][0]
    assert every["ner"] and isinstance(every[main], list if main == "embedding" else str)
    assert list(every["topics"]) == ["labels", "scores", "threshold"]
    assert any(answer["topics"]["labels"] for answer in bodies[-1]["results"])


def test_the_schema_check_refuses_bodies_off_the_contract(make_app: Any) -> None:
    """The check above can fail: a missing, an extra or a mistyped field each break it."""
    validator = response_validator(make_app().openapi(), "/analyze", 200)
    good = {
        "results": [
            {
                "sentiment": {"label": "positive", "score": 0.9, "scores": {"positive": 0.9}},
                "ner": [{"text": "Paris", "label": "LOC", "start": 0, "end": 5, "score": 0.8}],
            }
        ],
        "backbone": "b",
        "usage": {"tokens": 3, "layers_run": 2},
    }
    assert schema_errors(validator, good) == []
    sentiment = good["results"][0]["sentiment"]  # type: ignore[index]
    bad = [
        {**good, "usage": {"tokens": 3}},
        {**good, "results": [{"sentiment": {**sentiment, "extra": 1}}]},
        {**good, "results": [{"sentiment": {**sentiment, "score": None}}]},  # NaN -> null
        {**good, "results": [{"ner": [{"text": "Paris", "label": "LOC", "start": 0}]}]},
    ]
    for body in bad:
        assert schema_errors(validator, body), body


def test_error_bodies_match_the_published_schema(make_app: Any) -> None:
    app = make_app(max_texts=2, max_text_chars=50, api_keys=["k"])
    key = {"X-API-Key": "k"}
    cases: list[tuple[int, dict[str, Any]]] = [
        (401, {"json": {"texts": ["x"]}}),
        (422, {"json": {"texts": ["x"], "tasks": ["nope"]}, "headers": key}),
        (422, {"json": {"texts": "not a list"}, "headers": key}),
        (422, {"content": b"{not json", "headers": {**key, "content-type": "application/json"}}),
        (413, {"json": {"texts": ["a", "b", "c"]}, "headers": key}),
        (413, {"json": {"texts": ["y" * 51]}, "headers": key}),
        (415, {"content": b"texts=a", "headers": {**key, "content-type": "text/plain"}}),
    ]

    async def go() -> dict[str, Any]:
        async with running(app) as c:
            openapi = (await c.get("/openapi.json", headers=key)).json()
            for status, kwargs in cases:
                r = await c.post("/analyze", **kwargs)
                assert r.status_code == status, r.text
                validator = response_validator(openapi, "/analyze", status)
                assert schema_errors(validator, r.json()) == [], (status, r.text)
            return openapi

    openapi = asyncio.run(go())
    # the one error shape is what every documented error status of /analyze publishes
    documented = openapi["paths"]["/analyze"]["post"]["responses"]
    refs = {s: r["content"]["application/json"]["schema"] for s, r in documented.items()}
    assert {s for s, r in refs.items() if r != {"$ref": "#/components/schemas/ErrorResponse"}} == {
        "200"
    }


@pytest.mark.parametrize(
    ("documented", "record"),
    [
        (schemas.ClassAnswer, answers.ClassAnswer),
        (schemas.Entity, answers.Entity),
        (schemas.MultiLabelAnswer, answers.MultiLabelAnswer),
        (schemas.LabelScore, answers.LabelScore),
        (schemas.Usage, Usage),
        (schemas.AnalyzeResponse, AnalyzePayload),
    ],
)
def test_the_documented_fields_are_the_answer_records_in_order(
    documented: Any, record: Any
) -> None:
    """orjson writes a record's fields in declaration order: the OpenAPI models list the
    same keys in the same order, so the docs show what the bytes hold."""
    assert list(documented.model_fields) == [f.name for f in dataclasses.fields(record)]
