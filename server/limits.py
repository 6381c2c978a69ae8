"""Body size and content type limits, enforced before the body is read (pure ASGI)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fastapi import HTTPException

from server.errors import ErrorKind, mark, raw_error

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` mid-stream; FastAPI lets HTTPExceptions through to the handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyLimitMiddleware:
    """413 from Content-Length or while streaming; 415 for non-JSON bodies on JSON routes."""

    def __init__(self, app: Any, max_body_bytes: int, json_paths: Collection[str] = ()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.json_paths = set(json_paths)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        limit = self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _answer(scope, send, ErrorKind.BAD_REQUEST, "invalid Content-Length")
                return
            if int(declared) > limit:
                await _answer(
                    scope, send, ErrorKind.BODY_TOO_LARGE, f"request body larger than {limit} bytes"
                )
                return
        ctype = headers.get("content-type")
        if scope["path"] in self.json_paths and ctype is not None and not _is_json(ctype):
            await _answer(
                scope, send, ErrorKind.UNSUPPORTED_MEDIA_TYPE, "send the body as application/json"
            )
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _answer(scope, send, ErrorKind.BODY_TOO_LARGE, str(exc.detail))


def _is_json(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


async def _answer(scope: Scope, send: Any, kind: ErrorKind, message: str) -> None:
    mark(scope, kind)
    status, headers, body = raw_error(kind, message)
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
