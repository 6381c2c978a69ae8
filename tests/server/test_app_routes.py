"""Every route, status and error body of the ASGI app (in-process, tiny RoBERTa + 2 heads)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine.core import Engine, EngineConfig
from engine.loading import load_heads
from heads.io import HeadLoadError
from models.backbone import Backbone
from server.settings import Settings


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def test_analyze_answers_each_requested_task_only(make_app: Any, client_for: Any) -> None:
    async def go() -> None:
        async with client_for(make_app()) as c:
            r = await c.post("/analyze", json={"texts": ["Anna lives in Paris."], "tasks": ["ner"]})
            assert r.status_code == 200
            body = r.json()
            assert list(body["results"][0]) == ["ner"]
            assert body["backbone"] and body["usage"]["tokens"] > 0
            r = await c.post("/analyze", json={"texts": ["a", "b c"]})
            answers = r.json()["results"]
            assert len(answers) == 2
            assert all(set(a) == {"ner", "sentiment"} for a in answers)  # heads, not main task
            s = answers[0]["sentiment"]
            assert s["label"] in ("negative", "positive")
            assert s["score"] == pytest.approx(max(s["scores"].values()))
            r = await c.post("/analyze", json={"texts": ["x"], "tasks": ["embedding"]})
            assert len(r.json()["results"][0]["embedding"]) == 64

    _run(go())


def test_entity_offsets_point_into_the_text(make_app: Any, client_for: Any) -> None:
    text = "Émile met 東京 friends 👩‍👩‍👧 in  New York"

    async def go() -> None:
        async with client_for(make_app()) as c:
            r = await c.post("/analyze", json={"texts": [text], "tasks": ["ner"]})
            for ent in r.json()["results"][0]["ner"]:
                assert text[ent["start"] : ent["end"]] == ent["text"]

    _run(go())


def test_unknown_task_is_422_listing_available_tasks(make_app: Any, client_for: Any) -> None:
    async def go() -> None:
        async with client_for(make_app()) as c:
            r = await c.post("/analyze", json={"texts": ["x"], "tasks": ["ner", "pos"]})
            err = _error(r, 422, "unknown_task")
            assert err["available"] == ["ner", "sentiment", "embedding"]
            assert "'pos'" in err["message"] and "sentiment" in err["message"]

    _run(go())


@pytest.mark.parametrize(
    "body",
    [
        {"texts": []},
        {"texts": "not a list"},
        {"texts": [1, 2]},
        {"texts": ["x"], "tasks": []},
        {"texts": ["x"], "tasks": "ner"},
        {"texts": ["x"], "extra": 1},
        {},
    ],
)
def test_invalid_bodies_are_422_in_the_one_error_shape(
    make_app: Any, client_for: Any, body: Any
) -> None:
    async def go() -> None:
        async with client_for(make_app()) as c:
            _error(await c.post("/analyze", json=body), 422, "invalid_request")

    _run(go())


def test_limits_are_413(make_app: Any, client_for: Any) -> None:
    async def go() -> None:
        app = make_app(max_texts=3, max_text_chars=50, max_body_bytes=2000)
        async with client_for(app) as c:
            _error(await c.post("/analyze", json={"texts": ["a"] * 4}), 413, "too_many_texts")
            r = await c.post("/analyze", json={"texts": ["ok", "y" * 51]})
            assert "text 1" in _error(r, 413, "text_too_long")["message"]
            r = await c.post("/analyze", json={"texts": ["z" * 3000]})
            _error(r, 413, "body_too_large")

            async def chunks() -> Any:  # no Content-Length: caught while streaming
                for _ in range(10):
                    yield b" " * 500

            r = await c.post(
                "/analyze", content=chunks(), headers={"content-type": "application/json"}
            )
            _error(r, 413, "body_too_large")
            assert (await c.post("/analyze", json={"texts": ["fine"]})).status_code == 200

    _run(go())


def test_routing_errors_share_the_shape(make_app: Any, client_for: Any) -> None:
    async def go() -> None:
        async with client_for(make_app()) as c:
            _error(await c.get("/nope"), 404, "not_found")
            _error(await c.get("/analyze"), 405, "method_not_allowed")
            r = await c.post("/analyze", content=b"texts=a", headers={"content-type": "text/plain"})
            _error(r, 415, "unsupported_media_type")
            r = await c.post(
                "/analyze", content=b"{not json", headers={"content-type": "application/json"}
            )
            _error(r, 422, "invalid_request")

    _run(go())


def test_tasks_describes_heads_main_task_and_kernel(make_app: Any, client_for: Any) -> None:
    async def go() -> None:
        async with client_for(make_app()) as c:
            body = (await c.get("/tasks")).json()
            assert body["main_task"] == "embedding" and body["kernel"] == "torch"
            assert body["accumulator_dtype"] == body["head_layers_dtype"] == "float32"
            assert [h["name"] for h in body["heads"]] == ["ner", "sentiment"]
            ner = body["heads"][0]
            assert ner["kind"] == "token" and ner["labels"][0] == "O" and ner["version"] == "1"
            assert len(ner["layer_weights"]) == 4
            assert sum(ner["layer_weights"]) == pytest.approx(1.0)
            assert ner["threshold"] is None and ner["temperature"] > 0  # no threshold: a token head
            assert body["failures"] == []

    _run(go())


def test_no_docs_hides_the_api_description(make_app: Any, client_for: Any) -> None:
    async def go() -> None:
        async with client_for(make_app(docs=False)) as c:
            for path in ("/docs", "/redoc", "/openapi.json"):
                assert (await c.get(path)).status_code == 404, path
            assert (await c.get("/healthz")).status_code == 200

    _run(go())


def test_health_ready_docs_and_request_id(make_app: Any, client_for: Any) -> None:
    async def go() -> None:
        async with client_for(make_app()) as c:
            assert (await c.get("/healthz")).json() == {"status": "ok"}
            assert (await c.get("/readyz")).json() == {"status": "ready"}
            assert (await c.get("/docs")).status_code == 200
            schema = (await c.get("/openapi.json")).json()
            assert "/analyze" in schema["paths"]
            r = await c.get("/healthz", headers={"X-Request-ID": "abc-123"})
            assert r.headers["x-request-id"] == "abc-123"
            r = await c.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"})
            assert len(r.headers["x-request-id"]) == 32
            assert "sidetask_requests_total" in (await c.get("/metrics")).text

    _run(go())


def test_readyz_is_503_while_loading_then_200(
    make_app: Any, client_for: Any, tiny_roberta: Backbone, heads_root: Path
) -> None:
    gate = threading.Event()

    def slow(settings: Settings) -> Engine:
        gate.wait(10)
        return Engine(
            tiny_roberta, load_heads(settings, tiny_roberta), EngineConfig.from_settings(settings)
        )

    async def go() -> None:
        async with client_for(make_app(factory=slow), wait_ready=False) as c:
            _error(await c.get("/readyz"), 503, "not_ready")
            _error(await c.post("/analyze", json={"texts": ["x"]}), 503, "not_ready")
            assert (await c.get("/healthz")).status_code == 200
            gate.set()
            deadline = time.monotonic() + 30
            while (await c.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "never became ready after the load"
                await asyncio.sleep(0.02)
            assert (await c.post("/analyze", json={"texts": ["x"]})).status_code == 200

    _run(go())


@pytest.mark.parametrize(
    ("error", "stage"),
    [
        (ValueError("/srv/models/ckpt: config.json not found"), "model"),
        (HeadLoadError("/srv/heads/ner: head 'ner' was trained on another backbone"), "heads"),
    ],
)
def test_load_failure_keeps_readyz_503_naming_the_stage_not_the_error(
    make_app: Any, client_for: Any, error: Exception, stage: str
) -> None:
    def broken(settings: Settings) -> Engine:
        raise error

    async def go() -> None:
        app = make_app(factory=broken)
        state = app.state.sidetask
        async with client_for(app, wait_ready=False) as c:
            deadline = time.monotonic() + 30
            while state.load_error is None:
                assert time.monotonic() < deadline, "the load neither failed nor finished"
                await asyncio.sleep(0.01)
            err = _error(await c.get("/readyz"), 503, "not_ready")
            assert err["message"] == f"start-up failed: {stage} (see the server log)"
            assert "/srv" not in (await c.get("/readyz")).text  # paths stay in the log
            assert str(error) in state.load_error
        assert state.exit_code == 1

    _run(go())


def test_api_keys_bearer_or_header_and_admin(make_app: Any, client_for: Any) -> None:
    async def go() -> None:
        app = make_app(api_keys=["k1", "k2"], admin_keys=["root"])
        async with client_for(app) as c:
            body = {"texts": ["x"]}
            _error(await c.post("/analyze", json=body), 401, "unauthorized")
            r = await c.post("/analyze", json=body, headers={"Authorization": "Bearer nope"})
            assert _error(r, 401, "unauthorized") and "www-authenticate" in r.headers
            r = await c.post("/analyze", json=body, headers={"Authorization": "Bearer k2"})
            assert r.status_code == 200
            assert (await c.get("/tasks", headers={"X-API-Key": "k1"})).status_code == 200
            _error(await c.get("/tasks"), 401, "unauthorized")
            r = await c.post("/admin/reload", headers={"X-API-Key": "k1"})
            _error(r, 403, "forbidden")
            r = await c.post("/admin/reload", headers={"X-API-Key": "root"})
            assert r.status_code == 200
            assert (await c.get("/healthz")).status_code == 200  # probes stay open
            assert (await c.get("/metrics")).status_code == 200

    _run(go())


def test_api_keys_from_file(make_app: Any, client_for: Any, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# team keys\nfile-key\n\n")

    async def go() -> None:
        async with client_for(make_app(api_keys_file=keys)) as c:
            r = await c.post("/analyze", json={"texts": ["x"]}, headers={"X-API-Key": "file-key"})
            assert r.status_code == 200
            _error(await c.post("/analyze", json={"texts": ["x"]}), 401, "unauthorized")

    _run(go())


def test_cors_off_by_default_on_when_configured(make_app: Any, client_for: Any) -> None:
    preflight = {"Origin": "https://a.example", "Access-Control-Request-Method": "POST"}

    async def go() -> None:
        async with client_for(make_app()) as c:
            r = await c.get("/healthz", headers={"Origin": "https://a.example"})
            assert "access-control-allow-origin" not in r.headers
        async with client_for(make_app(cors_origins=["https://a.example"])) as c:
            r = await c.options("/analyze", headers=preflight)
            assert r.headers["access-control-allow-origin"] == "https://a.example"

    _run(go())


def test_timeout_is_504_and_unstarted_work_is_dropped(
    make_app: Any, client_for: Any, tiny_roberta: Backbone
) -> None:
    release = threading.Event()
    calls: list[int] = []

    class Slow(Engine):
        def run_step(self, items: Any) -> Any:
            calls.append(len({id(it.prepared) for it in items}))
            release.wait(5)
            return super().run_step(items)

    def factory(settings: Settings) -> Engine:
        return Slow(
            tiny_roberta, load_heads(settings, tiny_roberta), EngineConfig.from_settings(settings)
        )

    async def go() -> None:
        app = make_app(factory=factory, request_timeout_s=0.3, max_batch_size=1)
        async with client_for(app) as c:
            rs = await asyncio.gather(
                *(c.post("/analyze", json={"texts": [f"t{i}"]}) for i in range(3))
            )
            for r in rs:
                _error(r, 504, "timeout")
            assert app.state.sidetask.batcher.depth == 0  # queued ones were dropped
            release.set()  # "after" queues behind the held batch if it is still running
            assert (await c.post("/analyze", json={"texts": ["after"]})).status_code == 200
        assert calls[0] == 1 and len(calls) == 2  # only the started one ran, then "after"

    _run(go())


def test_skip_bad_heads_starts_without_them_and_says_so(
    make_app: Any, client_for: Any, heads_root: Path, tmp_path: Path
) -> None:
    import shutil

    root = tmp_path / "heads"
    shutil.copytree(heads_root, root)
    (root / "bad").mkdir()
    (root / "bad" / "manifest.json").write_text('{"name": "../../etc/passwd"}')

    async def go() -> None:
        async with client_for(make_app(heads_dir=root, skip_bad_heads=True)) as c:
            body = (await c.get("/tasks")).json()
            assert [h["name"] for h in body["heads"]] == ["ner", "sentiment"]
            assert len(body["failures"]) == 1 and "invalid manifest" in body["failures"][0]["error"]
            assert (await c.post("/analyze", json={"texts": ["x"]})).status_code == 200

    _run(go())
