"""Continuous batching: requests' windows in a scheduler, one backbone worker, one answer stage.

The event loop only enqueues prepared requests and awaits futures. The *worker* thread, as
soon as it is free, asks the :class:`~server.scheduler.WindowScheduler` for the next
micro-batch of windows (from any number of requests; it never sleeps waiting for company
unless ``max_wait_ms`` asks it to) and runs it on the engine. A request whose last window
has run goes to the *answer* thread, which merges its windows and builds its answers while
the worker already runs the next micro-batch; outcomes reach the loop through
``loop.call_soon_threadsafe``.

A step that raises is bisected (by request, then by window) so only the request that keeps
failing gets the error. A cancelled request (timeout, client gone) has its remaining windows
dropped before the next step. An error escaping the worker itself kills it: the batcher then
reports not alive and calls ``on_fatal`` so the process can exit non-zero.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence

import torch

from engine.core import AnalyzeResult, Engine, PreparedRequest, WindowItem
from server.jobs import BatchConfig, BatchFailed, Draining, Job, QueueFull, WorkerDead, post
from server.metrics import Metrics
from server.os_threads import name_os_thread
from server.scheduler import Entry, Step, WindowScheduler

log = logging.getLogger("sidetask.batching")


class Batcher:
    """The scheduler, the worker thread that runs its steps and the answer thread."""

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
        self._scheduler: WindowScheduler[WindowItem] = WindowScheduler(
            config.max_batch_tokens, config.max_batch_size
        )
        self._cond = threading.Condition()
        self._answers: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._answering = 0  # jobs handed to the answer thread and not yet settled
        self._stopping = False
        self._busy = False
        self._sleeping = False  # the worker waits on _cond: a submit must wake it
        self.draining = False
        self.fatal: BaseException | None = None
        self._step_seconds = 0.05  # moving averages for Retry-After
        self._step_rows = 1.0
        self._thread = threading.Thread(target=self._loop, name="sidetask-worker", daemon=True)
        self._answer_thread = threading.Thread(
            target=self._answer_loop, name="sidetask-answers", daemon=True
        )

    # ---- event-loop side -------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()
        self._answer_thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self._answer_thread.is_alive() and self.fatal is None

    @property
    def depth(self) -> int:
        """Requests with windows waiting to run (not counting windows running now)."""
        return self._scheduler.waiting

    @property
    def idle(self) -> bool:
        with self._cond:
            return not len(self._scheduler) and not self._busy and not self._answering

    def retry_after(self) -> int:
        """Seconds until the windows now queued have probably run."""
        per_window = self._step_seconds / max(self._step_rows, 1.0)
        return max(1, min(60, math.ceil(self._scheduler.pending_windows * per_window)))

    def submit(self, prepared: PreparedRequest, arrived_before_drain: bool = False) -> Job:
        """Enqueue without blocking; raises QueueFull, Draining or WorkerDead.

        While draining, only requests that reached the server before the drain began get in.
        """
        if not self.alive:
            raise WorkerDead("the worker thread is not running")
        if self.draining and not arrived_before_drain:
            raise Draining("the server is draining")
        loop = asyncio.get_running_loop()
        job = Job(prepared, loop.create_future(), loop)
        with self._cond:
            if len(self._scheduler) >= self.config.queue_size:
                raise QueueFull(self.retry_after())
            if self.metrics is not None:  # requests taken in, not those refused
                self.metrics.request_windows.observe(len(prepared.windows))
            if not prepared.windows:  # nothing for the model to do
                self._answering += 1
                self._answers.put(job)
                return job
            job.entry = self._scheduler.add(job, id(prepared.heads), list(prepared.windows))
            self._set_depth()
            wake = self._sleeping
        if wake:  # from the ready queue, once the route awaits: the loop then gives up the
            loop.call_soon(self._wake)  # GIL at once (a busy worker looks when its step ends)
        return job

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def cancel(self, job: Job, reason: str = "timeout") -> bool:
        """Drop the windows of ``job`` that have not run (its client gave up).

        True when windows were dropped; the step running now, if any, still finishes.
        """
        with self._cond:
            job.cancelled = True
            if job.entry is None or job.entry not in self._scheduler:
                return False
            dropped = self._scheduler.remove(job.entry)
            self._set_depth()
        if self.metrics is not None:
            self.metrics.cancelled.labels(reason=reason).inc()
            self.metrics.dropped_windows.inc(dropped)
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
        self._answers.put(None)
        for thread in (self._thread, self._answer_thread):
            if thread.is_alive():
                thread.join(timeout)

    # ---- worker side -----------------------------------------------------------------
    def _set_depth(self) -> None:
        if self.metrics is not None:
            self.metrics.queue_depth.set(self._scheduler.waiting)

    def _loop(self) -> None:
        name_os_thread(self._thread.name)
        try:
            while True:
                step = self._next_step()
                if step is None:
                    return
                try:
                    self._run(step)
                finally:
                    with self._cond:
                        self._busy = False
        except BaseException as exc:  # the worker itself broke: nothing can be served
            self._die(exc)

    def _die(self, exc: BaseException) -> None:
        self.fatal = exc
        log.critical("worker thread died: %r", exc, exc_info=exc)
        error = WorkerDead(f"worker thread died: {exc!r}")
        with self._cond:
            entries = self._scheduler.entries
            for entry in entries:
                self._scheduler.remove(entry)
            self._set_depth()
        for entry in entries:
            post(_job(entry), error)
        if self.on_fatal is not None:
            self.on_fatal(exc)

    def _next_step(self) -> Step[WindowItem] | None:
        """Block until a window is pending, then take one micro-batch (no idle waiting)."""
        with self._cond:
            while not self._scheduler.pending_windows:
                if self._stopping:
                    return None
                self._sleep()
            if self.config.max_wait_ms > 0:
                self._wait_for_company()
            step = self._scheduler.next_step()
            assert step is not None
            self._busy = True
            self._set_depth()
        return step

    def _wait_for_company(self) -> None:
        """Opt-in (max_wait_ms > 0): let a thin batch fill up for a moment."""
        deadline = time.perf_counter() + self.config.max_wait_ms / 1000.0
        while self._scheduler.pending_windows < self.config.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0 or self._stopping:
                return
            self._sleep(remaining)

    def _sleep(self, timeout: float | None = None) -> None:  # _cond held; submit/stop wake
        self._sleeping = True
        try:
            self._cond.wait(timeout)
        finally:
            self._sleeping = False

    def _run(self, step: Step[WindowItem]) -> None:
        started = time.perf_counter()
        for entry, _ in step.parts:
            job = _job(entry)
            if not job.started:
                job.started = True
                if self.metrics is not None:
                    self.metrics.queue_wait.observe(started - job.enqueued)
        failed, layers = self._run_isolating(step.parts)
        seconds = time.perf_counter() - started
        with self._cond:
            done = self._scheduler.step_done(step)
            for entry in failed:
                self._scheduler.remove(entry)
            done = [e for e in done if e not in failed]
            self._answering += len(done)
            self._set_depth()
        for entry, error in failed.items():
            post(_job(entry), error)
        for entry in done:
            self._answers.put(_job(entry))
        self._record(step, layers, seconds)

    def _run_isolating(
        self, parts: Sequence[tuple[Entry[WindowItem], list[WindowItem]]]
    ) -> tuple[dict[Entry[WindowItem], BatchFailed], int]:
        """Run a step; on an engine error bisect it (by request, then by window) so that only
        the requests that keep failing fail. Returns (failed entries, layers run)."""
        items = [it for _, its in parts for it in its]
        try:
            return {}, self.engine.run_step(items)
        except Exception as exc:
            _release_memory(exc)
            if len(parts) > 1:
                log.warning("step of %d requests failed (%r); retrying halves", len(parts), exc)
                mid = len(parts) // 2
                halves = [parts[:mid], parts[mid:]]
            elif len(items) > 1:
                entry, its = parts[0]
                mid = len(its) // 2
                halves = [[(entry, its[:mid])], [(entry, its[mid:])]]
            else:
                error_id = uuid.uuid4().hex[:12]
                log.error("request failed, error id %s: %r", error_id, exc, exc_info=exc)
                return {parts[0][0]: BatchFailed(error_id)}, 0
            failed: dict[Entry[WindowItem], BatchFailed] = {}
            layers = 0
            for half in halves:
                half = [(e, its) for e, its in half if e not in failed]
                if half:
                    f, n = self._run_isolating(half)
                    failed.update(f)
                    layers = max(layers, n)
            return failed, layers

    def _record(self, step: Step[WindowItem], layers: int, seconds: float) -> None:
        self._step_seconds = 0.8 * self._step_seconds + 0.2 * seconds
        self._step_rows = 0.8 * self._step_rows + 0.2 * step.rows
        m = self.metrics
        if m is None:
            return
        tokens = sum(it.length for it in step.items)
        m.batch_size.observe(len(step.parts))
        m.batch_windows.observe(step.rows)
        m.batch_tokens.observe(tokens)
        m.batch_padding.observe(step.padding_ratio)
        m.tokens.inc(tokens)
        if layers:
            m.layers_run.observe(layers)

    # ---- answer side -----------------------------------------------------------------
    def _answer_loop(self) -> None:
        name_os_thread(self._answer_thread.name)
        try:
            while True:
                jobs, stopping = self._finished_jobs()
                if jobs:
                    self._answer(jobs)
                if stopping:
                    return
        except BaseException as exc:  # the answer thread itself broke: nothing can be served
            self._die(exc)

    def _finished_jobs(self) -> tuple[list[Job], bool]:
        """Every job finished so far (waits for the first): a step's requests are answered
        together, each head's answers built for all their texts in one call. True when the
        stop sentinel came."""
        jobs: list[Job] = []
        job = self._answers.get()
        while job is not None:
            jobs.append(job)
            try:
                job = self._answers.get_nowait()
            except queue.Empty:
                return jobs, False
        return jobs, True

    def _answer(self, jobs: Sequence[Job]) -> None:
        """Answer ``jobs`` at once; if that raises, one by one, so that only a request whose
        own answer fails gets the error."""
        try:
            outcomes: Sequence[AnalyzeResult | Exception] = self.engine.finish_many(
                [job.prepared for job in jobs]
            )
        except Exception as exc:
            if len(jobs) == 1:
                error_id = uuid.uuid4().hex[:12]
                log.error("answer failed, error id %s: %r", error_id, exc, exc_info=exc)
                outcomes = [BatchFailed(error_id)]
            else:
                for job in jobs:
                    self._answer([job])
                return
        for job, outcome in zip(jobs, outcomes, strict=True):
            if self.metrics is not None and not isinstance(outcome, Exception):
                self.metrics.texts.inc(len(job.prepared.texts))
            post(job, outcome)
        with self._cond:
            self._answering -= len(jobs)


def _job(entry: Entry[WindowItem]) -> Job:
    """The job an entry was added for (the scheduler keeps it as an opaque owner)."""
    job = entry.owner
    assert isinstance(job, Job)
    return job


def _release_memory(exc: Exception) -> None:
    """After an out-of-memory error, give cached accelerator memory back before retrying."""

    if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
        torch.cuda.empty_cache()
