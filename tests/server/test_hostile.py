"""Hostile and odd inputs: each gets a specific 4xx or a correct answer, entity offsets stay
valid, and the server answers the next normal request correctly (issue 9's table)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

JSON = {"content-type": "application/json"}
ZWJ_FAMILY = "👩\u200d👩\u200d👧"

# (case id, raw body or JSON object, extra headers, expected status, expected error code)
CASES: list[tuple[str, Any, dict[str, str], int, str | None]] = [
    ("empty string", {"texts": [""]}, {}, 200, None),
    ("whitespace only", {"texts": [" \t\n\r  "]}, {}, 200, None),
    ("1 MB text", {"texts": ["a" * 1_000_000]}, {}, 413, "text_too_long"),
    ("100k texts", {"texts": ["a"] * 100_000}, {}, 413, "too_many_texts"),
    ("deeply nested JSON", b"[" * 50_000 + b"]" * 50_000, JSON, 422, "invalid_request"),
    ("nested objects", {"texts": [{"a": {"b": ["c"]}}]}, {}, 422, "invalid_request"),
    (
        "wrong content type",
        b'{"texts": ["x"]}',
        {"content-type": "text/plain"},
        415,
        "unsupported_media_type",
    ),
    (
        "form body",
        b"texts=x",
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
    ),
    ("invalid UTF-8", b'{"texts": ["caf\xe9 \xff"]}', JSON, 422, "invalid_request"),
    ("NUL and control chars", {"texts": ["a\x00b\x07c\x1b[31m Paris\x7f"]}, {}, 200, None),
    ("lone surrogate", b'{"texts": ["bad \\ud800 half"]}', JSON, 422, "invalid_request"),
    ("RTL text", {"texts": ["שלום עולם مرحبا بالعالم"]}, {}, 200, None),
    ("CJK text", {"texts": ["東京都に住んでいる田中さん"]}, {}, 200, None),
    ("emoji and ZWJ", {"texts": [f"Family {ZWJ_FAMILY} in 🇫🇷 Paris\u200b!"]}, {}, 200, None),
    ("5k-char word", {"texts": ["x" * 5_000]}, {}, 200, None),
    # ~100k tokens with the tiny BPE: over the default per-request budget, refused unrun
    ("50k-char word", {"texts": ["x" * 50_000]}, {}, 413, "token_budget_exceeded"),
    ("duplicate tasks", {"texts": ["x"], "tasks": ["ner", "ner", "sentiment"]}, {}, 200, None),
    ("unknown task", {"texts": ["x"], "tasks": ["ner", "../../etc"]}, {}, 422, "unknown_task"),
    ("huge number as text", b'{"texts": [1e999]}', JSON, 422, "invalid_request"),
    ("huge int as task", {"texts": ["x"], "tasks": [10**40]}, {}, 422, "invalid_request"),
    ("null texts", {"texts": None}, {}, 422, "invalid_request"),
    ("not an object", [1, 2, 3], {}, 422, "invalid_request"),
    ("empty body", b"", JSON, 422, "invalid_request"),
    ("truncated JSON", b'{"texts": ["x"', JSON, 422, "invalid_request"),
]


def _check_answer(texts: list[str], body: dict[str, Any]) -> None:
    assert len(body["results"]) == len(texts)
    for text, answer in zip(texts, body["results"], strict=True):
        for ent in answer.get("ner", []):
            assert 0 <= ent["start"] < ent["end"] <= len(text)
            assert text[ent["start"] : ent["end"]] == ent["text"]
        if "sentiment" in answer:
            assert sum(answer["sentiment"]["scores"].values()) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    ("payload", "headers", "status", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_hostile_input(
    make_app: Any, client_for: Any, payload: Any, headers: dict[str, str], status: int, code: Any
) -> None:
    async def go() -> None:
        async with client_for(make_app()) as c:
            if isinstance(payload, bytes):
                r = await c.post("/analyze", content=payload, headers=headers)
            elif headers:
                r = await c.post("/analyze", content=json.dumps(payload), headers=headers)
            else:
                r = await c.post("/analyze", json=payload)
            assert r.status_code == status, r.text[:500]
            if code is None:
                _check_answer(payload["texts"], r.json())
                if "tasks" in payload:
                    assert sorted(r.json()["results"][0]) == sorted(set(payload["tasks"]))
            else:
                assert r.json()["error"]["code"] == code
            normal = await c.post("/analyze", json={"texts": ["Anna went to Paris."]})
            assert normal.status_code == 200
            _check_answer(["Anna went to Paris."], normal.json())

    asyncio.run(go())
