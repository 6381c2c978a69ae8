"""One place that maps error kinds to HTTP statuses and the one error body shape.

Every error leaves the server as ``{"error": {"code": ..., "message": ...}}`` (plus
``available`` for unknown tasks, ``error_id`` for internal errors), whether it was raised
by a route, by FastAPI's own validation, by Starlette's routing (404/405) or by middleware.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

log = logging.getLogger("sidetask.errors")


class ErrorKind(enum.Enum):
    """Error code (the JSON ``code``) and its HTTP status."""

    BAD_REQUEST = ("bad_request", 400)
    UNAUTHORIZED = ("unauthorized", 401)
    FORBIDDEN = ("forbidden", 403)
    NOT_FOUND = ("not_found", 404)
    METHOD_NOT_ALLOWED = ("method_not_allowed", 405)
    TOO_MANY_TEXTS = ("too_many_texts", 413)
    TEXT_TOO_LONG = ("text_too_long", 413)
    BODY_TOO_LARGE = ("body_too_large", 413)
    TOKEN_BUDGET = ("token_budget_exceeded", 413)
    UNSUPPORTED_MEDIA_TYPE = ("unsupported_media_type", 415)
    VALIDATION = ("invalid_request", 422)
    UNKNOWN_TASK = ("unknown_task", 422)
    HEAD_INVALID = ("head_invalid", 422)
    OVERLOADED = ("overloaded", 429)
    CLIENT_CLOSED = ("client_closed_request", 499)  # nginx's code; nobody reads the body
    INTERNAL = ("internal_error", 500)
    NOT_READY = ("not_ready", 503)
    DRAINING = ("draining", 503)
    TIMEOUT = ("timeout", 504)

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]


_BY_STATUS = {
    400: ErrorKind.BAD_REQUEST,
    401: ErrorKind.UNAUTHORIZED,
    403: ErrorKind.FORBIDDEN,
    404: ErrorKind.NOT_FOUND,
    405: ErrorKind.METHOD_NOT_ALLOWED,
    413: ErrorKind.BODY_TOO_LARGE,
    415: ErrorKind.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorKind.VALIDATION,
    429: ErrorKind.OVERLOADED,
    503: ErrorKind.NOT_READY,
    504: ErrorKind.TIMEOUT,
}


class ApiError(Exception):
    """Raise from anywhere in a request to answer with ``kind``'s status and body."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        headers: Mapping[str, str] | None = None,
        available: Sequence[str] | None = None,
        error_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.headers = dict(headers or {})
        self.available = None if available is None else list(available)
        self.error_id = error_id


def error_body(
    kind: ErrorKind,
    message: str,
    available: Sequence[str] | None = None,
    error_id: str | None = None,
) -> dict[str, Any]:
    detail: dict[str, Any] = {"code": kind.code, "message": message}
    if available is not None:
        detail["available"] = list(available)
    if error_id is not None:
        detail["error_id"] = error_id
    return {"error": detail}


# Codes counted in sidetask_rejected_requests_total{reason}: refused before the model ran.
REJECTION_CODES = frozenset(
    k.code for k in ErrorKind if 400 <= k.status < 500 or k.status in (503, 504)
) - {"not_found", "method_not_allowed", "head_invalid", "client_closed_request"}


def mark(scope: MutableMapping[str, Any], kind: ErrorKind) -> None:
    """Leave the error code in the request scope for the metrics middleware."""
    scope.setdefault("state", {})["error_code"] = kind.code


def error_response(exc: ApiError) -> JSONResponse:
    body = error_body(exc.kind, exc.message, exc.available, exc.error_id)
    return JSONResponse(body, status_code=exc.kind.status, headers=exc.headers)


def raw_error(kind: ErrorKind, message: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body for pure ASGI middleware that answers by itself."""
    body = json.dumps(error_body(kind, message), separators=(",", ":")).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return kind.status, headers, body


def _validation_message(errors: Sequence[Any]) -> str:
    parts = []
    for err in list(errors)[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = len(errors) - 5
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


_FASTAPI_PARSE_ERROR = "There was an error parsing the body"


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    mark(request.scope, exc.kind)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    mark(request.scope, ErrorKind.VALIDATION)
    return error_response(ApiError(ErrorKind.VALIDATION, _validation_message(errors)))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) else ""
    if status == 400 and message == _FASTAPI_PARSE_ERROR:  # bad UTF-8, absurd nesting
        status, message = 422, "body is not valid JSON (encoding or nesting)"
    kind = _BY_STATUS.get(status, ErrorKind.BAD_REQUEST)
    mark(request.scope, kind)
    response = error_response(ApiError(kind, message or kind.code.replace("_", " "), exc.headers))
    response.status_code = status
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    import uuid

    error_id = uuid.uuid4().hex[:12]
    log.exception("internal error %s on %s %s", error_id, request.method, request.url.path)
    return error_response(ApiError(ErrorKind.INTERNAL, "internal server error", error_id=error_id))


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the one body shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
