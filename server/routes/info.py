"""GET /tasks, /healthz, /readyz, /metrics and POST /admin/reload."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from server.errors import ApiError, ErrorKind, error_body
from server.heads_admin import describe, reload_heads
from server.metrics import CONTENT_TYPE
from server.routes.deps import require_admin, require_key
from server.schemas import (
    ErrorResponse,
    HealthResponse,
    ReloadResponse,
    TasksResponse,
    error_responses,
)
from server.state import get_state

router = APIRouter()


@router.get(
    "/tasks",
    summary="Loaded heads (kind, labels, version, layer weights, metrics) and the main task",
    response_model=TasksResponse,
    responses=error_responses(401, 503),
    dependencies=[Depends(require_key)],
)
async def tasks(request: Request) -> TasksResponse:
    return describe(get_state(request))


@router.get("/healthz", summary="The process is alive", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    return HealthResponse(status="ok")


@router.get(
    "/readyz",
    summary="Model loaded, worker alive and not draining (else 503)",
    response_model=HealthResponse,
    responses={503: {"model": ErrorResponse, "description": "Loading, draining or broken."}},
)
async def readyz(request: Request) -> Response:
    kind, reason = get_state(request).readiness()
    if kind is not None:
        return JSONResponse(error_body(kind, reason), status_code=kind.status)
    return JSONResponse({"status": "ready"})


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    state = get_state(request)
    if state.batcher is not None:
        state.metrics.queue_depth.set(state.batcher.depth)
    return Response(state.metrics.scrape(), media_type=CONTENT_TYPE)


@router.post(
    "/admin/reload",
    summary="Re-scan the heads folders and swap the head set atomically",
    response_model=ReloadResponse,
    responses=error_responses(401, 403, 422, 503),
    dependencies=[Depends(require_admin)],
)
async def reload(request: Request) -> ReloadResponse:
    state = get_state(request)
    if state.engine is None:
        raise ApiError(ErrorKind.NOT_READY, state.readiness()[1])
    return await reload_heads(state)
