"""Schemathesis fuzzing of the app's own OpenAPI schema (fixed seed, a few hundred cases):
no 500s, every status documented, every response body matching its schema."""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def fuzz_app(make_app: Any) -> Any:
    return make_app(max_texts=8, max_text_chars=2000)


def _wait_ready(case: Any, app: Any) -> None:
    """The first call starts the app's lifespan; the model then loads in the background."""
    state = app.state.sidetask
    if state.engine is not None and state.batcher is not None:
        return
    case.call()
    deadline = time.monotonic() + 30
    while state.engine is None or state.batcher is None:
        assert time.monotonic() < deadline, "model did not load"
        time.sleep(0.02)


def test_api_fuzz(fuzz_app: Any) -> None:
    api = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {"/analyze", "/tasks", "/admin/reload"}
    calls: list[int] = []

    plans = [(op, GenerationMode.POSITIVE) for op in operations] + [
        (op, GenerationMode.NEGATIVE) for op in operations if op.path == "/analyze"
    ]
    for operation, mode in plans:

        @given(case=operation.as_strategy(mode))
        @seed(20261123)
        @settings(
            max_examples=60,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            _wait_ready(case, fuzz_app)
            response = case.call_and_validate(checks=CHECKS)
            calls.append(response.status_code)

        fuzz()
    assert len(calls) >= 200
    assert 200 in calls and 413 in calls and 422 in calls
