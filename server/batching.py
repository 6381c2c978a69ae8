"""Dynamic micro-batching: a bounded queue in front of one engine worker thread.

The event loop only enqueues and awaits futures; the worker thread forms batches (capped by
texts, estimated tokens and a short wait), calls :meth:`Engine.run_batch` (tokenisation
included, so it never runs on the loop) and hands each outcome back with
``loop.call_soon_threadsafe``. A batch that raises is bisected so that only the request that
keeps failing gets the error. An error escaping the loop itself kills the worker: the
batcher then reports not alive and calls ``on_fatal`` so the process can exit non-zero.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.engine import AnalyzeRequest, AnalyzeResult, Engine
from server.metrics import Metrics

log = logging.getLogger("sidetask.batching")


class QueueFull(Exception):
    """The queue holds ``queue_size`` requests; the caller should retry later."""

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
    max_batch_size: int = 64  # texts per batch
    max_batch_tokens: int = 16384  # estimated tokens per batch
    max_wait_ms: float = 5.0
    queue_size: int = 256


def estimate_tokens(text: str) -> int:
    """Cheap pre-tokenisation estimate (about 4 characters per token, plus specials)."""
    return len(text) // 4 + 2


@dataclass(eq=False)
class Job:
    """One queued request and the future its route awaits."""

    request: AnalyzeRequest
    future: asyncio.Future[AnalyzeResult]
    loop: asyncio.AbstractEventLoop
    texts: int
    tokens: int
    enqueued: float = field(default_factory=time.perf_counter)
    started: bool = False
    cancelled: bool = False


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)


class Batcher:
    """Bounded request queue + one worker thread that runs micro-batches on ``engine``."""

    def __init__(
        self,
        engine: Engine,
        config: BatchConfig,
        metrics: Metrics | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.metrics = metrics
        self.on_fatal = on_fatal
        self._queue: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = False
        self.draining = False
        self.fatal: BaseException | None = None
        self._batch_seconds = 0.05  # moving averages for Retry-After
        self._batch_requests = 1.0
        self._thread = threading.Thread(target=self._loop, name="sidetask-worker", daemon=True)

    # ---- event-loop side -------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.fatal is None

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def retry_after(self) -> int:
        """Seconds until the current queue has probably been served."""
        per_request = self._batch_seconds / max(self._batch_requests, 1.0)
        return max(1, min(60, math.ceil(self.depth * per_request)))

    def submit(self, request: AnalyzeRequest, arrived_before_drain: bool = False) -> Job:
        """Enqueue without blocking; raises QueueFull, Draining or WorkerDead.

        While draining, only requests that reached the server before the drain began get in.
        """
        if not self.alive:
            raise WorkerDead("the worker thread is not running")
        if self.draining and not arrived_before_drain:
            raise Draining("the server is draining")
        loop = asyncio.get_running_loop()
        job = Job(
            request,
            loop.create_future(),
            loop,
            texts=len(request.texts),
            tokens=sum(estimate_tokens(t) for t in request.texts),
        )
        with self._cond:
            if len(self._queue) >= self.config.queue_size:
                raise QueueFull(self.retry_after())
            self._queue.append(job)
            self._set_depth()
            self._cond.notify()
        return job

    def cancel(self, job: Job) -> bool:
        """Drop a job that has not started (its client gave up); True when dropped."""
        with self._cond:
            job.cancelled = True
            if job.started:
                return False
            try:
                self._queue.remove(job)
            except ValueError:
                return False
            self._set_depth()
            return True

    async def drain(self, timeout: float) -> bool:
        """Refuse new work, then wait (bounded) until queued and running work is done."""
        self.draining = True
        deadline = time.monotonic() + timeout
        while not self.idle and self.alive:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return self.idle

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ---- worker side -----------------------------------------------------------------
    def _set_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(len(self._queue))

    def _loop(self) -> None:
        batch: list[Job] = []
        try:
            while True:
                batch = []
                collected = self._collect()
                if collected is None:
                    return
                batch = collected
                self._run(batch)
        except BaseException as exc:  # the worker itself broke: nothing can be served
            self.fatal = exc
            log.critical("worker thread died: %r", exc, exc_info=exc)
            error = WorkerDead(f"worker thread died: {exc!r}")
            with self._cond:
                batch = [*batch, *self._queue]
                self._queue.clear()
                self._set_depth()
            for job in batch:
                _post(job, error)
            if self.on_fatal is not None:
                self.on_fatal(exc)

    def _collect(self) -> list[Job] | None:
        """Block for a first job, then gather more until a cap or the wait runs out."""
        cfg = self.config
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._cond.wait()
            first = self._queue.popleft()
            batch, texts, tokens = [first], first.texts, first.tokens
            deadline = time.perf_counter() + cfg.max_wait_ms / 1000.0
            while texts < cfg.max_batch_size and tokens < cfg.max_batch_tokens:
                if not self._queue:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0 or self._stopping:
                        break
                    self._cond.wait(remaining)
                    continue
                nxt = self._queue[0]
                if texts + nxt.texts > cfg.max_batch_size:
                    break
                if tokens + nxt.tokens > cfg.max_batch_tokens:
                    break
                batch.append(self._queue.popleft())
                texts += nxt.texts
                tokens += nxt.tokens
            for job in batch:
                job.started = True
            self._busy = True
            self._set_depth()
        return batch

    def _run(self, batch: list[Job]) -> None:
        started = time.perf_counter()
        try:
            if self.metrics is not None:
                for job in batch:
                    self.metrics.queue_wait.observe(started - job.enqueued)
                self.metrics.batch_size.observe(len(batch))
            outcomes = self._run_isolating(batch)
            for job, outcome in zip(batch, outcomes, strict=True):
                _post(job, outcome)
            self._record(batch, outcomes, time.perf_counter() - started)
        finally:
            with self._cond:
                self._busy = False

    def _run_isolating(self, batch: Sequence[Job]) -> list[AnalyzeResult | Exception]:
        """Run; on an engine error bisect the batch so only the failing requests fail."""
        try:
            return self.engine.run_batch([j.request for j in batch])
        except Exception as exc:
            _release_memory(exc)
            if len(batch) == 1:
                error_id = uuid.uuid4().hex[:12]
                log.error("batch failed, error id %s: %r", error_id, exc, exc_info=exc)
                return [BatchFailed(error_id)]
            log.warning("batch of %d failed (%r); retrying halves", len(batch), exc)
            mid = len(batch) // 2
            return [*self._run_isolating(batch[:mid]), *self._run_isolating(batch[mid:])]

    def _record(self, batch: Sequence[Job], outcomes: Sequence[object], seconds: float) -> None:
        self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * seconds
        self._batch_requests = 0.8 * self._batch_requests + 0.2 * len(batch)
        if self.metrics is None:
            return
        results = [o for o in outcomes if isinstance(o, AnalyzeResult)]
        tokens = sum(r.tokens for r in results)
        self.metrics.batch_tokens.observe(tokens)
        self.metrics.tokens.inc(tokens)
        self.metrics.texts.inc(sum(len(r.results) for r in results))
        if results:
            self.metrics.layers_run.observe(max(r.layers_run for r in results))


def _post(job: Job, outcome: object) -> None:
    """Settle the job's future on its own event loop (a closed loop has no one waiting)."""
    with contextlib.suppress(RuntimeError):
        job.loop.call_soon_threadsafe(_settle, job.future, outcome)


def _release_memory(exc: Exception) -> None:
    """After an out-of-memory error, give cached accelerator memory back before retrying."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
        torch.cuda.empty_cache()
