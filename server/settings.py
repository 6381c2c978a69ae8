"""The server's Settings: every field is a SIDETASK_* environment variable and a CLI flag.

The engine's fields come from :class:`engine.settings.EngineSettings`; this class adds the
HTTP, queue and limit settings and the reading of the environment (pydantic-settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engine.settings import EngineSettings, split_csv


class Settings(BaseSettings, EngineSettings):
    """Server, engine and model settings. Flags: ``--field-name``; env: ``SIDETASK_FIELD_NAME``."""

    model_config = SettingsConfigDict(env_prefix="SIDETASK_", extra="ignore", frozen=True)

    # queue and limits
    max_wait_ms: float = Field(
        0.0,
        ge=0,
        description="0 = continuous batching: a free worker runs what is queued at once. "
        "> 0: an idle worker waits up to this long for a fuller micro-batch (more "
        "throughput for lone requests' latency).",
    )
    max_request_tokens: int = Field(
        65536,
        gt=0,
        description="Token budget of one request: every window's tokens after tokenisation "
        "(a long text counts each of its windows). Over it: 413 before any model work.",
    )
    queue_size: int = Field(
        256, gt=0, description="Requests with windows waiting to run before 429."
    )
    max_texts: int = Field(64, gt=0, description="Texts per request before 413.")
    max_text_chars: int = Field(100_000, gt=0, description="Characters per text before 413.")
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0, description="Request body bytes before 413.")
    request_timeout_s: float = Field(60.0, gt=0, description="Per-request deadline (504 after).")
    drain_timeout_s: float = Field(
        30.0, ge=0, description="Graceful shutdown: time to finish work."
    )

    # HTTP
    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(8000, ge=0, le=65535, description="Bind port.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Accepted API keys (comma separated); empty = open.",
        repr=False,  # never in a log line
    )
    api_keys_file: Path | None = Field(None, description="File with one API key per line.")
    admin_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Keys allowed to call /admin/*; empty = api keys.",
        repr=False,
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Allowed CORS origins; empty = CORS off."
    )
    docs: bool = Field(
        True,
        description="Serve /docs, /redoc and /openapi.json (always without a key); "
        "--no-docs hides the API description on locked-down deployments.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )
    log_json: bool = Field(False, description="Access and app logs as JSON lines.")

    # process
    omp_wait_policy: Literal["default", "active", "passive"] = Field(
        "default",
        description="OpenMP threads between ops: default = libgomp's (spin briefly, then "
        "sleep: fastest on cores of its own), active = spin, passive = sleep at once (for a "
        "machine shared with other busy processes or replicas; on an idle one it costs "
        "latency). Read by the command line before torch loads (docs/server.md).",
    )

    # heads_dir is split by EngineSettings' own validator
    _split_server = field_validator("api_keys", "admin_keys", "cors_origins", mode="before")(
        split_csv
    )
