"""What the routes share: settings, metrics, keys, and the engine once it has loaded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from engine.core import Engine
from server.batching import Batcher
from server.errors import ApiError, ErrorKind
from server.metrics import Metrics
from server.security import KeyChecker
from server.settings import Settings

log = logging.getLogger("sidetask.server")


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics
    keys: KeyChecker
    engine: Engine | None = None
    batcher: Batcher | None = None
    load_error: str | None = None  # for the log only: it may name paths and internals
    load_stage: str = "model"  # what failed, the only part /readyz shows
    draining: bool = False
    drain_started: float = float("inf")  # time.monotonic() when the drain began
    exit_code: int = 0
    loop: asyncio.AbstractEventLoop | None = None
    on_exit: Callable[[], None] | None = None  # run_server: ask uvicorn to stop
    analyze_inflight: int = (
        0  # inference requests (/analyze, /v1/embeddings, /embed, /predict) in flight
    )
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def readiness(self) -> tuple[ErrorKind | None, str]:
        """(None, "ready") or the reason this instance should get no traffic."""
        if self.load_error is not None:
            return ErrorKind.NOT_READY, f"start-up failed: {self.load_stage} (see the server log)"
        if self.engine is None or self.batcher is None:
            return ErrorKind.NOT_READY, "model is loading"
        if not self.batcher.alive:
            return ErrorKind.NOT_READY, "worker thread died"
        if self.draining:
            return ErrorKind.DRAINING, "server is draining"
        return None, "ready"

    def fail_load(self, exc: BaseException) -> None:
        """Record why the engine could not be built: the text for the log, the stage for
        /readyz (a load error can hold file paths and library internals)."""
        self.load_error = f"{type(exc).__name__}: {exc}"
        self.load_stage = load_stage(exc)

    def ready_engine(self) -> tuple[Engine, Batcher]:
        kind, reason = self.readiness()
        if kind is not None or self.engine is None or self.batcher is None:
            raise ApiError(kind or ErrorKind.NOT_READY, reason)
        return self.engine, self.batcher

    def loaded_engine(self) -> Engine:
        """The engine for read-only routes (still answers while draining)."""
        if self.engine is None:
            raise ApiError(ErrorKind.NOT_READY, self.readiness()[1])
        return self.engine

    def start_draining(self) -> None:
        if not self.draining:
            self.drain_started = time.monotonic()
            self.draining = True

    def arrived_before_drain(self, request: Request) -> bool:
        arrived = getattr(request.state, "arrived", None)
        return arrived is not None and arrived < self.drain_started

    def request_exit(self, code: int) -> None:
        """Stop serving with ``code`` (run_server returns it); no-op outside run_server."""
        self.exit_code = max(self.exit_code, code)
        if self.on_exit is not None:
            self.on_exit()

    def worker_died(self, exc: BaseException) -> None:
        """Called from the worker thread: flip readiness and exit non-zero."""
        if self.loop is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            self.loop.call_soon_threadsafe(self.request_exit, 70)


def load_stage(exc: BaseException) -> str:
    """Which start-up stage an exception from building the engine comes from."""
    from heads.io import HeadLoadError
    from models.kernel_check import KernelCheckError

    if isinstance(exc, HeadLoadError):
        return "heads"
    if isinstance(exc, KernelCheckError):
        return "kernel check"
    return "model"


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.sidetask
    return state
