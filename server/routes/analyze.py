"""POST /analyze: validate, submit to the batcher, await, shape the answer."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from server.batching import BatchFailed, Draining, QueueFull, WorkerDead
from server.engine import AnalyzeRequest, AnalyzeResult, UnknownTaskError
from server.errors import ApiError, ErrorKind
from server.routes.deps import require_key
from server.schemas import AnalyzeBody, AnalyzeResponse, error_responses
from server.state import AppState, get_state

router = APIRouter()


def _check_limits(body: AnalyzeBody, state: AppState) -> None:
    s = state.settings
    if len(body.texts) > s.max_texts:
        raise ApiError(
            ErrorKind.TOO_MANY_TEXTS, f"{len(body.texts)} texts; at most {s.max_texts} per request"
        )
    for i, text in enumerate(body.texts):
        if len(text) > s.max_text_chars:
            raise ApiError(
                ErrorKind.TEXT_TOO_LONG,
                f"text {i} has {len(text)} characters; at most {s.max_text_chars}",
            )


async def _await(state: AppState, request: AnalyzeRequest, early: bool) -> AnalyzeResult:
    batcher = state.batcher
    if batcher is None:
        raise ApiError(ErrorKind.NOT_READY, state.readiness()[1])
    try:
        job = batcher.submit(request, arrived_before_drain=early)
    except QueueFull as exc:
        raise ApiError(
            ErrorKind.OVERLOADED,
            "the request queue is full; retry later",
            headers={"Retry-After": str(exc.retry_after)},
        ) from exc
    except Draining as exc:
        raise ApiError(ErrorKind.DRAINING, "server is draining") from exc
    except WorkerDead as exc:
        raise ApiError(ErrorKind.NOT_READY, str(exc)) from exc
    timeout = state.settings.request_timeout_s
    try:
        return await asyncio.wait_for(asyncio.shield(job.future), timeout)
    except TimeoutError as exc:
        batcher.cancel(job)
        raise ApiError(ErrorKind.TIMEOUT, f"no answer within {timeout:g}s") from exc
    except UnknownTaskError as exc:  # a reload removed a task after validation
        raise ApiError(ErrorKind.UNKNOWN_TASK, str(exc), available=exc.available) from exc
    except BatchFailed as exc:
        raise ApiError(ErrorKind.INTERNAL, str(exc), error_id=exc.error_id) from exc
    except WorkerDead as exc:
        raise ApiError(ErrorKind.NOT_READY, str(exc)) from exc


@router.post(
    "/analyze",
    summary="Answer every requested task for each text, from one backbone pass",
    response_model=None,
    responses={
        200: {"model": AnalyzeResponse},
        **error_responses(400, 401, 413, 415, 422, 429, 500, 503, 504),
    },
    dependencies=[Depends(require_key)],
)
async def analyze(body: AnalyzeBody, request: Request) -> JSONResponse:
    state = get_state(request)
    early = state.arrived_before_drain(request)
    engine = state.loaded_engine() if early else state.ready_engine()[0]
    _check_limits(body, state)
    try:
        tasks = engine.resolve_tasks(body.tasks)
    except UnknownTaskError as exc:
        raise ApiError(ErrorKind.UNKNOWN_TASK, str(exc), available=exc.available) from exc
    for task in tasks:
        state.metrics.task_requests.labels(task=task).inc()
    result = await _await(state, AnalyzeRequest(list(body.texts), body.tasks and tasks), early)
    payload: dict[str, Any] = {
        "results": result.results,
        "backbone": engine.backbone.info.name,
        "usage": {"tokens": result.tokens, "layers_run": result.layers_run},
    }
    return JSONResponse(payload)
