"""POST /v1/embeddings and GET /v1/models: OpenAI's shapes, values equal to /analyze's, and
OpenAI's error body (with sidetask's status and code) for every refusal."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from app_harness import assert_same_answers, running
from fastapi import FastAPI

from models.backbone import Backbone

TEXTS = ["I loved Paris in the spring.", "A second, different text."]


def _openai_error(body: dict[str, Any], code: str, param: str | None = None) -> None:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["message"]
    if param is not None:
        assert error["param"] == param


def test_embeddings_equal_analyze_in_float_and_base64(
    make_app: Callable[..., FastAPI], tiny_roberta: Backbone
) -> None:
    async def go() -> None:
        name = tiny_roberta.info.name
        async with running(make_app()) as client:
            ref = (
                await client.post("/analyze", json={"texts": TEXTS, "tasks": ["embedding"]})
            ).json()
            plain = await client.post("/v1/embeddings", json={"model": name, "input": TEXTS})
            packed = await client.post(
                "/v1/embeddings", json={"model": name, "input": TEXTS, "encoding_format": "base64"}
            )
            single = await client.post("/v1/embeddings", json={"model": name, "input": TEXTS[0]})
        assert plain.status_code == 200, plain.text
        body = plain.json()
        assert body["object"] == "list" and body["model"] == name
        assert [d["index"] for d in body["data"]] == [0, 1]
        assert all(d["object"] == "embedding" for d in body["data"])
        expected = [r["embedding"] for r in ref["results"]]
        assert_same_answers([d["embedding"] for d in body["data"]], expected)
        assert body["usage"] == {
            "prompt_tokens": ref["usage"]["tokens"],
            "total_tokens": ref["usage"]["tokens"],
        }
        decoded = [
            np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4").tolist()
            for d in packed.json()["data"]
        ]
        np.testing.assert_allclose(decoded, expected, atol=1e-6)
        assert len(single.json()["data"]) == 1
        np.testing.assert_allclose(single.json()["data"][0]["embedding"], expected[0], atol=1e-4)

    asyncio.run(go())


def test_models_lists_the_backbone_and_retrieves_it_by_short_name(
    make_app: Callable[..., FastAPI], tiny_roberta: Backbone
) -> None:
    async def go() -> None:
        name = tiny_roberta.info.name
        async with running(make_app()) as client:
            listing = (await client.get("/v1/models")).json()
            one = await client.get(f"/v1/models/{name.rsplit('/', 1)[-1]}")
            missing = await client.get("/v1/models/gpt-4o")
        assert [m["id"] for m in listing["data"]] == [name]
        assert listing["object"] == "list" and listing["data"][0]["object"] == "model"
        assert one.status_code == 200 and one.json()["id"] == name
        assert missing.status_code == 404
        _openai_error(missing.json(), "not_found", "model")

    asyncio.run(go())


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"model": "text-embedding-3-small", "input": "x"}, 404, "not_found", "model"),
        ({"model": "{name}", "input": "x", "dimensions": 7}, 422, "invalid_request", "dimensions"),
        ({"model": "{name}", "input": [1, 2, 3]}, 422, "invalid_request", "input"),
        ({"model": "{name}", "input": []}, 422, "invalid_request", "input"),
        (
            {"model": "{name}", "input": "x", "encoding_format": "int8"},
            422,
            "invalid_request",
            None,
        ),
        ({"model": "{name}", "input": "x", "temperature": 1}, 422, "invalid_request", None),
        ({"input": "x"}, 422, "invalid_request", "model"),
        ({"model": "{name}", "input": ["a"] * 5}, 413, "too_many_texts", None),
    ],
)
def test_refusals_use_openai_error_shape(
    make_app: Callable[..., FastAPI],
    tiny_roberta: Backbone,
    body: dict[str, Any],
    status: int,
    code: str,
    param: str | None,
) -> None:
    name = tiny_roberta.info.name
    sent = {k: v.format(name=name) if k == "model" else v for k, v in body.items()}

    async def go() -> None:
        async with running(make_app(max_texts=4)) as client:
            answer = await client.post("/v1/embeddings", json=sent)
        assert answer.status_code == status, answer.text
        _openai_error(answer.json(), code, param)

    asyncio.run(go())


def test_bearer_key_is_required_and_counted_like_analyze(
    make_app: Callable[..., FastAPI], tiny_roberta: Backbone
) -> None:
    async def go() -> None:
        body = {"model": tiny_roberta.info.name, "input": "hello"}
        async with running(make_app(api_keys=["s3cret"])) as client:
            anonymous = await client.post("/v1/embeddings", json=body)
            wrong = await client.get("/v1/models", headers={"Authorization": "Bearer nope"})
            ok = await client.post(
                "/v1/embeddings", json=body, headers={"Authorization": "Bearer s3cret"}
            )
            scrape = (await client.get("/metrics")).text
        assert anonymous.status_code == 401
        _openai_error(anonymous.json(), "unauthorized")
        assert anonymous.json()["error"]["type"] == "authentication_error"
        assert wrong.status_code == 401
        assert ok.status_code == 200
        assert 'sidetask_task_requests_total{task="embedding"} 1.0' in scrape
        assert 'route="/v1/embeddings",status="401"' in scrape
        assert 'sidetask_rejected_requests_total{reason="unauthorized"}' in scrape

    asyncio.run(go())


def test_bart_backbone_says_it_serves_no_embeddings(
    tiny_bart: Backbone, tiny_bart_dir: Any, tmp_path: Any
) -> None:
    async def go() -> None:
        from app_harness import engine_factory

        from server.app import create_app
        from server.settings import Settings

        settings = Settings(backbone=str(tiny_bart_dir), heads_dir=[tmp_path], max_wait_ms=2.0)
        app = create_app(settings, engine_factory(tiny_bart))
        async with running(app) as client:
            answer = await client.post(
                "/v1/embeddings", json={"model": tiny_bart.info.name, "input": "x"}
            )
        assert answer.status_code == 422
        _openai_error(answer.json(), "invalid_request", "model")
        assert "generate" in answer.json()["error"]["message"]

    asyncio.run(go())


def test_not_ready_is_a_503_server_error_in_openai_shape(
    make_app: Callable[..., FastAPI], tiny_roberta: Backbone
) -> None:
    import threading

    from app_harness import engine_factory

    release = threading.Event()
    build = engine_factory(tiny_roberta)

    def slow_factory(settings: Any) -> Any:
        release.wait(30)
        return build(settings)

    async def go() -> None:
        async with running(make_app(factory=slow_factory), wait_ready=False) as client:
            answer = await client.post("/v1/embeddings", json={"model": "x", "input": "x"})
            models = await client.get("/v1/models")
            release.set()
        assert answer.status_code == 503 and models.status_code == 503
        _openai_error(answer.json(), "not_ready")
        assert answer.json()["error"]["type"] == "server_error"

    asyncio.run(go())
