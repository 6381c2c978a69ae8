"""POST /analyze: validate, submit to the batcher, await, shape the answer."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from engine.core import AnalyzeRequest, UnknownTaskError
from server.errors import ApiError, ErrorKind
from server.routes.deps import require_key
from server.routes.submit import check_text_limits, submit_and_wait
from server.schemas import AnalyzeBody, AnalyzeResponse, error_responses
from server.state import get_state

router = APIRouter()


@router.post(
    "/analyze",
    summary="Answer every requested task for each text, from one backbone pass",
    response_model=AnalyzeResponse,
    responses=error_responses(400, 401, 413, 415, 422, 429, 500, 503, 504),
    dependencies=[Depends(require_key)],
)
async def analyze(body: AnalyzeBody, request: Request) -> Response:
    state = get_state(request)
    early = state.arrived_before_drain(request)
    engine = state.loaded_engine() if early else state.ready_engine()[0]
    check_text_limits(body.texts, state)
    try:
        tasks = engine.resolve_tasks(body.tasks)
    except UnknownTaskError as exc:
        raise ApiError(ErrorKind.UNKNOWN_TASK, str(exc), available=exc.available) from exc
    for task in tasks:
        state.metrics.task_requests.labels(task=task).inc()
    result = await submit_and_wait(
        state, AnalyzeRequest(list(body.texts), body.tasks and tasks), early, request
    )
    # The body is the engine's own JSON (orjson, answers written as they are): a Response
    # skips FastAPI's re-validation through AnalyzeResponse, which documents the shape in
    # OpenAPI; tests/server/test_analyze_schema.py holds raw bodies to that schema.
    body_json = result.payload_json(engine.backbone.info.name)
    return Response(body_json, media_type="application/json")
