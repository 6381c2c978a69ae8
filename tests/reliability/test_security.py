"""Security a deployer relies on: several API keys from env and file, compared in constant
time and never logged; no pickle anywhere in loading; task names never reach the filesystem;
CORS off unless configured. (Manifest schema and head-name checks: tests/heads/test_io.py;
the non-root image: tests/deploy/test_docker.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from fastapi import FastAPI
from safetensors.torch import load_file

import server.security as security
from benchmarks.live_server import ServerProcess
from heads.io import HeadLoadError, load_head
from heads.manifest import WEIGHTS_FILE
from models.backbone import Backbone, BackboneError
from server.security import KeyChecker

Running = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]
ENV_KEYS = ["sk-env-Q9x8f3LmZ2", "sk-env-W7v6pR1tY4"]
FILE_KEYS = ["sk-file-A1b2C3d4E5", "sk-file-F6g7H8i9J0"]
WRONG = ["sk-env-Q9x8f3LmZ", "sk-env-Q9x8f3LmZ2X", "sk-attacker-000000"]


def test_keys_from_env_and_file_work_and_never_reach_the_logs(
    serve: Callable[..., ServerProcess], tiny_heads: Path, tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# rotated 2026-11\n" + "\n".join(FILE_KEYS) + "\n\n")
    server = serve(
        tiny_heads,
        api_keys=",".join(ENV_KEYS),
        api_keys_file=str(keys_file),
        log_level="debug",
    )
    server.wait_ready()
    body = {"texts": ["Anna lives in Paris"]}
    with httpx.Client(base_url=server.base, timeout=30) as c:
        for key in ENV_KEYS + FILE_KEYS:
            assert c.post("/analyze", json=body, headers={"X-API-Key": key}).status_code == 200
            r = c.post("/analyze", json=body, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200
            bad = c.post("/analyze", json={"texts": 3}, headers={"X-API-Key": key})
            assert bad.status_code == 422  # error paths log too: still no key
        for key in WRONG:
            r = c.post("/analyze", json=body, headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert c.post("/analyze", json=body).status_code == 401
        assert c.get("/tasks").status_code == 401
        assert c.get("/tasks", headers={"X-API-Key": FILE_KEYS[1]}).status_code == 200
        # CORS is off unless origins are configured: browsers get no grant
        r = c.post(
            "/analyze",
            json=body,
            headers={"X-API-Key": ENV_KEYS[0], "Origin": "https://evil.example"},
        )
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
        preflight = {
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key",
        }
        r = c.options("/analyze", headers=preflight)
        assert not any(h.startswith("access-control-") for h in r.headers)
    assert server.stop() == 0
    log = server.log_text()
    assert '"status": 401' in log and '"status": 422' in log  # the requests were logged
    for key in ENV_KEYS + FILE_KEYS + WRONG:
        assert key not in log


def test_every_key_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """No early exit on a match and no length shortcut: each check compares every key with
    hmac.compare_digest, so timing does not reveal which key (or how much of one) matched."""
    calls: list[tuple[bytes, bytes]] = []
    real = security.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", counting)
    keys = ["k" * 32, "m" * 32, "n" * 16]
    checker = KeyChecker(keys)
    counts = []
    for presented, ok in [(keys[0], True), (keys[2], True), ("x", False), ("k" * 31, False)]:
        calls.clear()
        if ok:
            checker.check({"x-api-key": presented})
        else:
            with pytest.raises(security.ApiError):
                checker.check({"x-api-key": presented})
        assert {b for _, b in calls} == {k.encode() for k in keys}  # every key, every time
        counts.append(len(calls))
        assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)
    assert len(set(counts)) == 1  # as many comparisons whichever key (if any) matched
    assert "k" * 32 not in repr(checker)


def test_task_names_never_reach_the_filesystem(
    app_with: Callable[..., FastAPI], running: Running
) -> None:
    hostile = ["../../etc/passwd", "/etc/passwd", "sentiment/../ner", "ner\x00", "NER", "..", ""]

    async def go() -> None:
        async with running(app_with()) as c:
            for name in hostile:
                r = await c.post("/analyze", json={"texts": ["x"], "tasks": [name]})
                assert r.status_code == 422, (name, r.text)
                err = r.json()["error"]
                assert err["code"] in ("unknown_task", "invalid_request")
                if err["code"] == "unknown_task":
                    assert set(err["available"]) >= {"ner", "sentiment"}

    asyncio.run(go())


def test_heads_and_backbones_load_without_unpickling(
    tiny_heads: Path, tiny_roberta: Backbone, tiny_roberta_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    head = tmp_path / "sentiment"
    shutil.copytree(tiny_heads / "sentiment", head)
    torch.save({"evil": 1}, head / "head.pt")  # a pickle lying next to the real weights

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("unpickling during a load")

    with monkeypatch.context() as m:
        for target, name in [(pickle, "load"), (pickle, "loads"), (torch, "load")]:
            m.setattr(target, name, refuse)
        assert load_head(head, tiny_roberta.info).name == "sentiment"
        assert Backbone.load(tiny_roberta_dir).info.num_layers == tiny_roberta.info.num_layers

    (head / WEIGHTS_FILE).unlink()  # only the pickle is left: refused, never opened
    with pytest.raises(HeadLoadError, match=WEIGHTS_FILE):
        load_head(head, tiny_roberta.info)

    pickled = tmp_path / "pickled-backbone"
    pickled.mkdir()
    for f in tiny_roberta_dir.glob("*.json"):
        shutil.copy(f, pickled)
    torch.save(
        load_file(str(tiny_roberta_dir / "model.safetensors")), pickled / "pytorch_model.bin"
    )
    with pytest.raises(BackboneError, match="safetensors"):
        Backbone.load(pickled)
