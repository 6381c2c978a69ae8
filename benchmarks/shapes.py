"""Backbones by shape: the real MiniLM, or RoBERTa/BART sizes with random weights.

Random weights cost the same compute as the trained checkpoints (none are reachable
offline). They borrow the MiniLM tokenizer: the benchmarks feed synthetic token ids, so
only the special and padding ids matter.
"""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.common import BenchContext
from models.backbone import Backbone

SHAPES = ("minilm", "roberta-base", "roberta-large", "bart-large")


def _config(shape: str) -> Any:
    from transformers import BartConfig, RobertaConfig

    if shape == "roberta-base":
        return RobertaConfig(max_position_embeddings=514, type_vocab_size=1)
    if shape == "roberta-large":
        return RobertaConfig(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            max_position_embeddings=514,
            type_vocab_size=1,
        )
    if shape == "bart-large":
        return BartConfig()  # the defaults are bart-large: d_model 1024, 12 + 12 layers
    raise ValueError(f"unknown shape {shape!r}; choose from {', '.join(SHAPES)}")


def load_backbone(ctx: BenchContext) -> Backbone:
    """The backbone under test: ``--shape`` (random weights), ``--backbone`` or the MiniLM."""
    return build_backbone(ctx.shape, ctx)


def build_backbone(shape: str, ctx: BenchContext) -> Backbone:
    """``minilm`` (or ``--backbone``) loads real weights; the other shapes are random."""
    from models.defaults import default_backbone_path, open_backbone

    if shape == "minilm":
        return open_backbone(ctx.backbone, device=ctx.device, dtype=ctx.dtype)
    from transformers import AutoModel, AutoTokenizer

    config = _config(shape)
    tokenizer = AutoTokenizer.from_pretrained(str(default_backbone_path()), use_fast=True)
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(0)
    with torch.device(ctx.device):
        model = AutoModel.from_config(config, dtype=ctx.dtype)
    return Backbone(model, tokenizer, name=f"{shape} (random weights)", max_length=512)
