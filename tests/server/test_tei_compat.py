"""POST /embed and POST /predict[/{task}]: TEI's shapes with values equal to /analyze's, and
clear refusals where sidetask cannot do what TEI would."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from app_harness import assert_same_answers, running
from fastapi import FastAPI

TEXTS = ["I loved Paris in the spring.", "Dull and far too long."]


def _ranked(answer: dict[str, Any]) -> list[dict[str, Any]]:
    pairs = sorted(answer["scores"].items(), key=lambda kv: kv[1], reverse=True)
    return [{"label": label, "score": score} for label, score in pairs]


def test_embed_returns_one_vector_per_input_equal_to_analyze(
    make_app: Callable[..., FastAPI],
) -> None:
    async def go() -> None:
        async with running(make_app()) as client:
            ref = await client.post("/analyze", json={"texts": TEXTS, "tasks": ["embedding"]})
            many = await client.post("/embed", json={"inputs": TEXTS, "truncate": True})
            one = await client.post("/embed", json={"inputs": TEXTS[0]})
        expected = [r["embedding"] for r in ref.json()["results"]]
        assert many.status_code == 200, many.text
        assert_same_answers(many.json(), expected)
        assert_same_answers(one.json(), expected[:1])  # TEI: a list of vectors even for one

    asyncio.run(go())


def test_predict_by_path_or_field_in_tei_shape(make_app: Callable[..., FastAPI]) -> None:
    async def go() -> None:
        async with running(make_app()) as client:
            ref = await client.post("/analyze", json={"texts": TEXTS, "tasks": ["sentiment"]})
            by_path = await client.post("/predict/sentiment", json={"inputs": TEXTS[0]})
            by_field = await client.post("/predict", json={"inputs": TEXTS, "task": "sentiment"})
            top1 = await client.post(
                "/predict/sentiment", json={"inputs": TEXTS[0], "parameters": {"top_k": 1}}
            )
        answers = [r["sentiment"] for r in ref.json()["results"]]
        assert by_path.status_code == 200, by_path.text
        assert_same_answers(by_path.json(), _ranked(answers[0]))  # one input: a flat list
        assert_same_answers(by_field.json(), [_ranked(a) for a in answers])
        assert by_path.json()[0]["label"] == answers[0]["label"]
        assert_same_answers(top1.json(), _ranked(answers[0])[:1])

    asyncio.run(go())


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/predict", {"inputs": "x"}, 422, "unknown_task"),  # two sequence heads: name one
        ("/predict/ner", {"inputs": "x"}, 422, "unknown_task"),  # a token head
        ("/predict/nope", {"inputs": "x"}, 422, "unknown_task"),
        ("/predict/sentiment", {"inputs": "x", "raw_scores": True}, 422, "invalid_request"),
        ("/predict/sentiment", {"inputs": [["a", "b"]]}, 422, "invalid_request"),  # pairs
        ("/predict/sentiment", {"inputs": "x", "task": "other"}, 422, "invalid_request"),
        ("/embed", {"inputs": "x", "normalize": False}, 422, "invalid_request"),
        ("/embed", {"inputs": []}, 422, "invalid_request"),
        ("/embed", {"inputs": ["a"] * 5}, 413, "too_many_texts"),
    ],
)
def test_refusals_name_the_reason(
    make_app: Callable[..., FastAPI],
    heads_root: Any,
    tmp_path: Any,
    path: str,
    body: dict[str, Any],
    status: int,
    code: str,
) -> None:
    import shutil

    heads = tmp_path / "heads"
    shutil.copytree(heads_root, heads)
    shutil.copytree(heads / "sentiment", heads / "second")  # two sequence heads: /predict asks
    manifest = heads / "second" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"sentiment"', '"second"', 1))

    async def go() -> None:
        async with running(make_app(heads_dir=heads, max_texts=4)) as client:
            answer = await client.post(path, json=body)
        assert answer.status_code == status, answer.text
        assert answer.json()["error"]["code"] == code
        if code == "unknown_task":
            assert answer.json()["error"]["available"] == ["second", "sentiment"]

    asyncio.run(go())


def test_predict_without_task_uses_the_only_sequence_head(
    make_app: Callable[..., FastAPI],
) -> None:
    async def go() -> None:
        async with running(make_app()) as client:  # sentiment (sequence) + ner (token)
            plain = await client.post("/predict", json={"inputs": TEXTS[0]})
            named = await client.post("/predict/sentiment", json={"inputs": TEXTS[0]})
        assert plain.status_code == 200, plain.text
        assert plain.json() == named.json()

    asyncio.run(go())


def test_tei_routes_need_the_key_when_keys_are_on(make_app: Callable[..., FastAPI]) -> None:
    async def go() -> None:
        async with running(make_app(api_keys=["k1"])) as client:
            anonymous = await client.post("/embed", json={"inputs": "x"})
            keyed = await client.post(
                "/predict/sentiment", json={"inputs": "x"}, headers={"Authorization": "Bearer k1"}
            )
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "unauthorized"
        assert keyed.status_code == 200

    asyncio.run(go())
