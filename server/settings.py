"""The one Settings class: every field is a SIDETASK_* environment variable and a CLI flag."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class Settings(BaseSettings):
    """Server, engine and model settings. Flags: ``--field-name``; env: ``SIDETASK_FIELD_NAME``."""

    model_config = SettingsConfigDict(env_prefix="SIDETASK_", extra="ignore")

    # model
    backbone: str | None = Field(
        None, description="Backbone folder or hub name; empty = the embedded all-MiniLM-L6-v2."
    )
    heads_dir: list[Path] | None = Field(
        None,
        description="Folders of head folders (comma separated); empty = the shipped heads.",
    )
    skip_bad_heads: bool = Field(
        False, description="Start without heads that fail to load instead of refusing to start."
    )
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N.")
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32",
        description="Backbone weights dtype: float16 on CUDA only; bfloat16 on CUDA or on "
        "CPUs with AMX (several times faster than float32 there).",
    )
    head_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description=(
            "Heads' compute dtype (accumulator weights and head layers; sums stay float32): "
            "auto = float32 layers, accumulator per accumulator_dtype. bfloat16 is "
            "faster for large batches on CPUs with AMX, slower for small ones."
        ),
    )
    accumulator_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description=(
            "dtype of the accumulator's projection matmul (GELU(Z) @ W; LayerNorm and sums "
            "stay float32): auto = head_dtype when set, else bfloat16 for a float32 backbone "
            "on a CPU with bf16 dot products (AVX512-BF16 or AMX), else the backbone dtype."
        ),
    )
    kernel: Literal["auto", "torch", "triton"] = Field(
        "auto",
        description="Accumulator path: auto = Triton on CUDA once it matches the torch path on "
        "a start-up check (else torch, with a warning), torch on CPU; triton fails start-up "
        "on a mismatch.",
    )
    compile: bool = Field(
        False,
        description="torch.compile each backbone layer (Inductor, dynamic shapes: one graph "
        "for every batch x length) and compile it at start-up, before /readyz says ready.",
    )
    plan_cache_size: int = Field(
        64,
        gt=0,
        description="Task subsets whose fused accumulator weights stay built (least recently "
        "used dropped first); each holds a copy of its heads' projections.",
    )
    max_length: int | None = Field(
        None, gt=8, description="Tokens per window; empty = the backbone's own limit."
    )
    window_overlap: int = Field(64, ge=0, description="Tokens shared by neighbouring windows.")
    generate_max_length: int = Field(64, gt=0, description="BART: max generated tokens.")
    generate_num_beams: int = Field(1, gt=0, description="BART: beams (1 = greedy).")
    threads: int | None = Field(None, gt=0, description="torch CPU threads; empty = torch default.")

    # batching and limits
    max_batch_tokens: int | None = Field(
        None,
        gt=0,
        description="Padded tokens per backbone pass (micro-batch); empty = 16384 on CUDA, "
        "512 on CPU (a CPU runs no faster per token in bigger passes, and a short pass keeps "
        "the wait of a small request beside a long one short).",
    )
    max_batch_size: int = Field(
        64, gt=0, description="Windows per backbone pass; also texts per server micro-batch."
    )
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

    _split = field_validator("api_keys", "admin_keys", "cors_origins", "heads_dir", mode="before")(
        _split_csv
    )
