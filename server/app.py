"""The FastAPI application: create_app (lifespan loads the model off the loop) and run_server.

Nothing heavy runs at import. The backbone and heads load in a thread after the server has
started listening, so /healthz answers at once and /readyz says 503 until the model is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from engine.core import Engine
from engine.loading import resolve_device
from engine.openmp import wait_policy_in_effect, wait_policy_mismatch
from server.batching import Batcher
from server.errors import install_error_handlers
from server.heads_admin import publish_model, reload_heads
from server.jobs import BatchConfig
from server.limits import BodyLimitMiddleware
from server.metrics import Metrics
from server.middleware import RequestContextMiddleware
from server.security import KeyChecker
from server.settings import Settings
from server.state import AppState
from server.threads import serving_threads, usable_cores

log = logging.getLogger("sidetask.server")

EngineFactory = Callable[[Settings], Engine]

DESCRIPTION = """Many lightweight task heads answer from one frozen transformer pass.

Every error has the body `{"error": {"code": ..., "message": ...}}`. When API keys are
configured, send `Authorization: Bearer <key>` or `X-API-Key: <key>`."""


async def _in_daemon_thread(fn: Callable[[Settings], Engine], settings: Settings) -> Engine:
    """``asyncio.to_thread`` on a daemon thread: a SIGTERM while a large model is still
    loading must stop the process now, not after the load (the default executor is joined
    at exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Engine] = loop.create_future()

    def settle(value: Engine | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def run() -> None:
        try:
            value, error = fn(settings), None
        except BaseException as exc:
            value, error = None, exc
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=run, name="sidetask-load", daemon=True).start()
    return await future


def with_serving_threads(settings: Settings) -> Settings:
    """``settings`` with ``threads`` resolved for serving (server/threads.py), logged."""
    cores = usable_cores()
    threads = serving_threads(settings, resolve_device(settings.device).type, cores)
    if threads == settings.threads:
        return settings
    log.info(
        "torch threads: %d (%d usable cores, one left to the event loop and the clients; "
        "--threads to change)",
        threads,
        cores,
    )
    return settings.model_copy(update={"threads": threads})


async def _load(state: AppState, factory: EngineFactory) -> None:
    """Build the engine in a thread, then start the batch worker."""
    try:
        engine = await _in_daemon_thread(factory, with_serving_threads(state.settings))
    except Exception as exc:
        state.fail_load(exc)
        log.critical("cannot start: %s", state.load_error)
        state.request_exit(1)
        return
    engine.observer = state.metrics.observe_stage
    s = state.settings
    config = BatchConfig.from_settings(s, engine.backbone.device)
    batcher = Batcher(engine, config, state.metrics, on_fatal=state.worker_died)
    batcher.start()
    state.engine, state.batcher = engine, batcher
    publish_model(state)
    info = engine.backbone.info
    log.info(
        "ready: backbone %s (%d layers, %s), heads %s, kernel %s",
        info.name,
        info.num_layers,
        engine.backbone.device,
        engine.heads.names,
        engine.kernel_path,
    )


async def drain(state: AppState) -> bool:
    """Refuse new work; let queued and running requests finish within drain_timeout_s."""
    state.start_draining()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + state.settings.drain_timeout_s
    finished = True
    if state.batcher is not None:
        finished = await state.batcher.drain(state.settings.drain_timeout_s)
    while state.analyze_inflight > 0 and loop.time() < deadline:
        await asyncio.sleep(0.02)  # answers computed; let the routes hand them back
    return finished and state.analyze_inflight == 0


def _new_app(docs: bool, lifespan: Any) -> FastAPI:
    """The FastAPI app; /docs and /redoc (server/routes/docs.py) load Swagger UI and ReDoc
    from this server, so they work in an air-gapped cluster."""
    app = FastAPI(
        title="sidetask",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    if docs:
        from server.routes import docs as offline_docs

        offline_docs.install(app)
    return app


def create_app(
    settings: Settings | None = None, engine_factory: EngineFactory | None = None
) -> FastAPI:
    """The ASGI app; ``engine_factory`` (default: build from settings) runs in a thread."""
    settings = settings or Settings()  # type: ignore[call-arg]
    if engine_factory is None:
        from engine.loading import build_engine

        engine_factory = build_engine
    factory = engine_factory
    state = AppState(settings, Metrics(), KeyChecker.from_settings(settings))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.loop = asyncio.get_running_loop()
        loader = asyncio.create_task(_load(state, factory))
        try:
            yield
        finally:
            if not await drain(state):
                log.warning("drain timeout: some requests were not finished")
            if state.batcher is not None:
                state.batcher.stop()
            loader.cancel()

    app = _new_app(settings.docs, lifespan)
    app.state.sidetask = state
    install_error_handlers(app)
    from server.routes import analyze, info, openai_compat, tei_compat, ui

    routers = [analyze.router, info.router, openai_compat.router, tei_compat.router, ui.router]
    for router in routers:
        app.include_router(router)
    json_paths = {"/analyze", "/v1/embeddings", "/embed", "/predict"}
    app.add_middleware(
        BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes, json_paths=json_paths
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    routes = [
        getattr(r, "path", "")
        for r in [*app.routes, *(r for router in routers for r in router.routes)]
        if getattr(r, "path", "")
    ]
    app.add_middleware(RequestContextMiddleware, state=state, routes=routes)
    return app


def run_server(settings: Settings) -> int:
    """``sidetask serve``: uvicorn with drain on SIGTERM and head reload on SIGHUP."""
    from server.logging_setup import configure_logging

    configure_logging(settings.log_level, settings.log_json)
    mismatch = wait_policy_mismatch(settings.omp_wait_policy)
    if mismatch:
        log.warning(mismatch)
    log.info("OpenMP wait policy: %s", wait_policy_in_effect())
    app = create_app(settings)
    state: AppState = app.state.sidetask
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(settings.drain_timeout_s) + 5,
    )
    server = _DrainingServer(config, state)
    state.on_exit = server.stop_now

    def on_hup(sig: int, frame: FrameType | None) -> None:
        if state.loop is not None:
            state.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(_reload(state)))

    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_hup)
    server.run()
    log.info("stopped (exit code %d)", state.exit_code)
    return state.exit_code


async def _reload(state: AppState) -> None:
    try:
        await reload_heads(state)
    except Exception as exc:  # reported in the log; the old heads stay
        log.error("SIGHUP reload failed: %s", exc)


class _DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first SIGTERM/SIGINT drains before stopping, then exits 0.

    uvicorn's own handler would re-raise the signal after shutdown (exit by signal); a
    graceful drain is a normal exit. A second signal stops at once.
    """

    def __init__(self, config: uvicorn.Config, state: AppState) -> None:
        super().__init__(config)
        self.state = state
        self.drain_started = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = self.state
        if self.drain_started or state.loop is None or state.engine is None:
            self.force_exit = self.should_exit
            self.should_exit = True
            return
        self.drain_started = True
        state.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._drain()))

    async def _drain(self) -> None:
        log.info("signal received: draining (up to %gs)", self.state.settings.drain_timeout_s)
        if not await drain(self.state):
            log.warning("drain timeout: stopping with work unfinished")
        self.should_exit = True

    def stop_now(self) -> None:
        self.should_exit = True
