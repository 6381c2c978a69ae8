"""OpenAI's error body on /v1 routes, built from the one ErrorKind model.

The official clients read ``{"error": {"message", "type", "param", "code"}}``; the rest of the
server answers ``{"error": {"code", "message"}}``. A route class converts every error raised
while a /v1 route runs (auth, validation, limits, the scheduler) so both shapes come from the
same ErrorKind and status, and the metrics middleware still sees the error code.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from server.errors import ApiError, ErrorKind, mark

# OpenAI's error ``type`` per status (their documented families).
_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
    504: "timeout_error",
}


def openai_error_body(
    kind: ErrorKind, message: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    kind_type = _TYPES.get(kind.status, "invalid_request_error")
    return {
        "error": {"message": message, "type": kind_type, "param": param, "code": code or kind.code}
    }


class OpenAIError(ApiError):
    """An ApiError that also names the offending request field (OpenAI's ``param``)."""

    def __init__(self, kind: ErrorKind, message: str, param: str | None = None) -> None:
        super().__init__(kind, message)
        self.param = param


def _validation(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = loc[0] if loc else None
    message = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: "
        f"{e.get('msg', 'invalid')}"
        for e in errors[:5]
    )
    return message or "invalid request body", param


class OpenAIRoute(APIRoute):
    """An APIRoute whose errors leave in OpenAI's shape (status and code unchanged)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except OpenAIError as exc:
                return _answer(request, exc.kind, exc.message, exc.param, exc.headers)
            except ApiError as exc:
                return _answer(request, exc.kind, exc.message, None, exc.headers)
            except RequestValidationError as exc:
                message, param = _validation(exc)
                return _answer(request, ErrorKind.VALIDATION, message, param, {})

        return route


def _answer(
    request: Request,
    kind: ErrorKind,
    message: str,
    param: str | None,
    headers: dict[str, str],
) -> JSONResponse:
    mark(request.scope, kind)
    body = openai_error_body(kind, message, param)
    return JSONResponse(body, status_code=kind.status, headers=headers)


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(description="OpenAI's error family, e.g. invalid_request_error.")
    param: str | None = Field(None, description="The request field at fault, when one is.")
    code: str = Field(description="sidetask's stable error code (same as on other routes).")


class OpenAIErrorResponse(BaseModel):
    error: OpenAIErrorDetail


def openai_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for a /v1 route: the statuses, in OpenAI's error shape."""
    return {s: {"model": OpenAIErrorResponse} for s in statuses}
