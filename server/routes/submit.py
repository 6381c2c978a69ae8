"""The one way a route gets work done: prepare, check the budget, submit, await.

Every inference route (/analyze, the OpenAI and TEI compatible ones) goes through
:func:`submit_and_wait`, so limits, cancellation, timeouts and error shapes are the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fastapi import Request

from engine.core import AnalyzeRequest, AnalyzeResult, Engine, PreparedRequest, UnknownTaskError
from server.batching import Batcher
from server.errors import ApiError, ErrorKind
from server.jobs import BatchFailed, Draining, Job, QueueFull, WorkerDead
from server.state import AppState

# Below this many characters tokenising on the event loop is cheaper than a thread hop.
INLINE_TOKENIZE_CHARS = 4096


def check_text_limits(texts: Sequence[str], state: AppState) -> None:
    """413 for too many texts or a text too long, before anything is queued."""
    s = state.settings
    if len(texts) > s.max_texts:
        raise ApiError(
            ErrorKind.TOO_MANY_TEXTS, f"{len(texts)} texts; at most {s.max_texts} per request"
        )
    for i, text in enumerate(texts):
        if len(text) > s.max_text_chars:
            raise ApiError(
                ErrorKind.TEXT_TOO_LONG,
                f"text {i} has {len(text)} characters; at most {s.max_text_chars}",
            )


async def prepare(state: AppState, engine: Engine, request: AnalyzeRequest) -> PreparedRequest:
    """Tokenise (off the loop when large) and hold the request to its token budget."""
    try:
        if sum(len(t) for t in request.texts) <= INLINE_TOKENIZE_CHARS:
            prepared = engine.prepare(request)
        else:
            prepared = await asyncio.to_thread(engine.prepare, request)
    except UnknownTaskError as exc:  # a reload removed a task after validation
        raise ApiError(ErrorKind.UNKNOWN_TASK, str(exc), available=exc.available) from exc
    budget = state.settings.max_request_tokens
    if prepared.tokens > budget:
        raise ApiError(
            ErrorKind.TOKEN_BUDGET,
            f"this request needs {prepared.tokens} tokens ({len(prepared.windows)} windows of "
            f"at most {engine.backbone.info.max_length}); the budget is {budget} tokens per "
            "request (max_request_tokens): send fewer or shorter texts",
        )
    return prepared


async def submit_and_wait(
    state: AppState, request: AnalyzeRequest, early: bool, http: Request | None = None
) -> AnalyzeResult:
    """Queue ``request`` and wait for its answer under the request deadline.

    ``early``: the request arrived before a drain began (it is still admitted).
    ``http``: when given, a client that disconnects has its remaining windows dropped.
    """
    batcher = state.batcher
    engine = state.engine
    if batcher is None or engine is None:
        raise ApiError(ErrorKind.NOT_READY, state.readiness()[1])
    prepared = await prepare(state, engine, request)
    # The disconnect watcher starts before the submit, so that once the worker is woken
    # (from the loop's ready queue, after this coroutine awaits) the loop has nothing left
    # to do for this request and gives the GIL up at once.
    watcher = asyncio.ensure_future(_disconnected(http)) if http is not None else None
    try:
        job = batcher.submit(prepared, arrived_before_drain=early)
    except QueueFull as exc:
        _stop(watcher)
        raise ApiError(
            ErrorKind.OVERLOADED,
            "the request queue is full; retry later",
            headers={"Retry-After": str(exc.retry_after)},
        ) from exc
    except Draining as exc:
        _stop(watcher)
        raise ApiError(ErrorKind.DRAINING, "server is draining") from exc
    except WorkerDead as exc:
        _stop(watcher)
        raise ApiError(ErrorKind.NOT_READY, str(exc)) from exc
    try:
        return await _outcome(state, batcher, job, watcher)
    except BatchFailed as exc:
        raise ApiError(ErrorKind.INTERNAL, str(exc), error_id=exc.error_id) from exc
    except WorkerDead as exc:
        raise ApiError(ErrorKind.NOT_READY, str(exc)) from exc


def _stop(watcher: asyncio.Future[None] | None) -> None:
    """Cancel the disconnect watcher without awaiting it (that would cost the answer one
    more turn of the event loop; a cancelled task needs nobody to collect it)."""
    if watcher is not None:
        watcher.cancel()


async def _outcome(
    state: AppState, batcher: Batcher, job: Job, watcher: asyncio.Future[None] | None
) -> AnalyzeResult:
    """The job's answer; cancels it on timeout or when the client hangs up."""
    timeout = state.settings.request_timeout_s
    waiters: set[asyncio.Future[Any]] = {job.future}  # asyncio.wait never cancels them
    if watcher is not None:
        waiters.add(watcher)
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        _stop(watcher)
    if job.future.done():
        return job.future.result()
    if watcher is not None and watcher in done:
        batcher.cancel(job, reason="disconnect")
        raise ApiError(ErrorKind.CLIENT_CLOSED, "the client closed the connection")
    batcher.cancel(job, reason="timeout")
    raise ApiError(ErrorKind.TIMEOUT, f"no answer within {timeout:g}s")


async def _disconnected(http: Request) -> None:
    """Returns when the client has gone (the body is already read, so the next ASGI message
    is the disconnect)."""
    while True:
        message = await http.receive()
        if message["type"] == "http.disconnect":
            return
