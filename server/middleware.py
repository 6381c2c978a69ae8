"""Per-request context (pure ASGI): request id, access log line, request metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Collection
from typing import Any

from server.errors import REJECTION_CODES
from server.logging_setup import ACCESS_LOGGER
from server.state import AppState

access_log = logging.getLogger(ACCESS_LOGGER)
_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
REQUEST_ID_HEADER = b"x-request-id"


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID when it is sane, else a fresh one."""
    for key, value in headers:
        if key.lower() == REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            if _VALID_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


# Routes that submit work to the model: a drain waits until every one of them has answered.
INFERENCE_PATHS = frozenset({"/analyze", "/v1/embeddings", "/embed", "/predict"})


def is_inference(path: str) -> bool:
    return path in INFERENCE_PATHS or path.startswith("/predict/")


class RequestContextMiddleware:
    """Outermost layer: every response (errors from inner middleware too) is counted."""

    def __init__(self, app: Any, state: AppState, routes: Collection[str]) -> None:
        self.app = app
        self.state = state
        self.metrics = state.metrics
        self.routes = set(routes)
        # (route, status) -> its counter and histogram children: ``labels()`` takes a lock
        # and builds a key on every call, on the event loop, for every request
        self._series: dict[tuple[str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        scope.setdefault("state", {})["request_id"] = request_id
        scope["state"].pop("error_code", None)
        scope["state"]["arrived"] = time.monotonic()  # drain serves what arrived before it
        path = scope["path"]
        route = path if path in self.routes else "other"
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        analyze = is_inference(path)
        self.metrics.inflight.inc()
        self.state.analyze_inflight += analyze
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.inflight.dec()
            self.state.analyze_inflight -= analyze
            elapsed = time.perf_counter() - started
            series = self._series.get((route, status))
            if series is None:
                series = self._series[(route, status)] = (
                    self.metrics.requests.labels(route=route, status=str(status)),
                    self.metrics.request_duration.labels(route=route),
                )
            series[0].inc()
            series[1].observe(elapsed)
            code = scope["state"].get("error_code")
            if code in REJECTION_CODES:
                self.metrics.rejected.labels(reason=code).inc()
            client = scope.get("client")
            access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                path,
                status,
                elapsed * 1000,
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client": f"{client[0]}:{client[1]}" if client else None,
                },
            )
