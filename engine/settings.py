"""The engine's settings: backbone, heads, dtypes, kernel, windows, micro-batches.

One source for every engine knob. The server's ``Settings`` (server/settings.py) extends this
class with HTTP and queue settings and reads both from flags and SIDETASK_* variables; code
below the command line never reads the environment, it is handed an ``EngineSettings``.
Training and the offline benchmarks build one from their own flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Padded tokens per micro-batch when ``max_batch_tokens`` is empty, by device type. On CPU the
#: cost per window is near its best from a few hundred tokens per pass and gets worse beyond
#: ~1000 (benchmarks/results/step_size_cpu.json); bigger passes would only lengthen the wait
#: of a small request beside a long one.
BATCH_TOKENS = {"cuda": 16384, "cpu": 512}


def split_csv(value: object) -> object:
    """``"a, b"`` -> ``["a", "b"]``: list settings arrive as one comma separated string."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class EngineSettings(BaseModel):
    """Frozen and validated when built, like infinity's EngineArgs: a bad value fails here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description="Backbone weights dtype. auto = bfloat16 on a CPU with native bf16 "
        "(AVX512-BF16 or AMX) or a CUDA GPU with bf16 (float16 on one without), but only when "
        "the fidelity gate shipped with the heads passed for this device kind, this backbone "
        "and these heads (embedding cosine >= 0.999, answers as float32's); else float32. "
        "/tasks and the start-up log say what it resolved to and why. float16 on CUDA only.",
    )
    head_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description=(
            "Heads' compute dtype (accumulator weights and head layers; sums stay float32): "
            "auto = the backbone's dtype when that is bfloat16/float16 (what the dtype gate "
            "measured), else float32 layers with the accumulator per accumulator_dtype. "
            "Beside a float32 backbone bfloat16 pays for large batches only."
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
    unpad: bool = Field(
        True,
        description="Run a BERT-family backbone without pad tokens: linear and feed-forward "
        "layers on the real tokens only, attention per run of equal-length rows (the same "
        "hidden states; faster the more a micro-batch's lengths differ, "
        "docs/benchmarks.md#padding). Other backbones and compile keep the padded pass.",
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
    threads: int | None = Field(
        None,
        gt=0,
        description="torch CPU threads; empty = torch's default (one per core), except that "
        "sidetask serve on a CPU leaves one core to the event loop and clients (usable "
        "cores - 1, at least 1).",
    )

    # batching (the engine's micro-batches)
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

    _split = field_validator("heads_dir", mode="before")(split_csv)

    def batch_tokens(self, device: torch.device | None = None) -> int:
        """``max_batch_tokens``, or its default for ``device`` (CPU when unknown)."""
        if self.max_batch_tokens is not None:
            return self.max_batch_tokens
        return BATCH_TOKENS["cuda" if device is not None and device.type == "cuda" else "cpu"]
