"""What the batcher hands around: its knobs, a submitted request with its future, and the
errors a route turns into HTTP statuses (server/routes/submit.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.core import AnalyzeResult, PreparedRequest, WindowItem
from server.scheduler import Entry
from server.settings import Settings


class QueueFull(Exception):
    """The scheduler holds ``queue_size`` requests; the caller should retry later."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"queue full, retry after {retry_after}s")
        self.retry_after = retry_after


class Draining(Exception):
    """The server is shutting down and takes no new work."""


class WorkerDead(Exception):
    """The worker thread has died; nothing will be answered any more."""


class BatchFailed(Exception):
    """This request kept failing inside the engine; ``error_id`` is in the log."""

    def __init__(self, error_id: str) -> None:
        super().__init__(f"the model failed on this request (error id {error_id})")
        self.error_id = error_id


@dataclass(frozen=True)
class BatchConfig:
    """The batcher's knobs, resolved for one device; built from the server's Settings."""

    max_batch_size: int  # windows per micro-batch
    max_batch_tokens: int  # padded tokens per micro-batch
    max_wait_ms: float  # > 0: an idle worker waits this long for a fuller batch
    queue_size: int  # requests in the scheduler before 429

    @classmethod
    def from_settings(cls, settings: Settings, device: torch.device | None = None) -> BatchConfig:
        return cls(
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.batch_tokens(device),
            max_wait_ms=settings.max_wait_ms,
            queue_size=settings.queue_size,
        )


@dataclass(eq=False)
class Job:
    """One submitted request and the future its route awaits."""

    prepared: PreparedRequest
    future: asyncio.Future[AnalyzeResult]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)
    entry: Entry[WindowItem] | None = None
    started: bool = False
    cancelled: bool = False


def settle(future: asyncio.Future[Any], value: Any) -> None:
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)


def post(job: Job, outcome: object) -> None:
    """Settle the job's future on its own event loop (a closed loop or a cancelled job has no
    one waiting: an error left on such a future would only be logged as never retrieved)."""
    if job.cancelled:
        return
    with contextlib.suppress(RuntimeError):
        job.loop.call_soon_threadsafe(settle, job.future, outcome)
