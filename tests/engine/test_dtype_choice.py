"""``dtype: auto``: half precision only where a gate for this device, backbone and heads passed.

Fake gate files in a temporary folder and a stated hardware, so the rules are checked the same
on every machine; the last test checks the gate shipped with the heads still vouches for them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from app_harness import save_tiny_heads
from gate_files import write_gate

from engine.dtype_choice import (
    SHIPPED_GATES,
    Hardware,
    choose_dtype,
    fingerprint,
    gate_file,
    head_digest,
)
from engine.loading import load_backbone, load_backbone_with_dtype
from engine.settings import EngineSettings
from heads.shipped import PRETRAINED_HEADS
from models.backbone import Backbone

CPU = torch.device("cpu")
CUDA = torch.device("cuda")
BF16_CPU = Hardware(cpu_fast_bf16=True)
FP: dict[str, Any] = {
    "backbone": {"model_type": "bert", "hidden_size": 8, "num_layers": 2, "embedding_hash": "ab"},
    "heads": {"sentiment": "0123", "ner": "4567"},
}


def test_a_passing_gate_for_exactly_these_weights_gives_bfloat16(tmp_path: Path) -> None:
    write_gate(tmp_path, FP)
    choice = choose_dtype("auto", CPU, BF16_CPU, FP, tmp_path)
    assert choice.dtype == torch.bfloat16
    assert "passed" in choice.reason and "Test CPU" in choice.reason


def test_a_failed_gate_keeps_float32_and_names_the_criterion(tmp_path: Path) -> None:
    write_gate(tmp_path, FP, passed=False)
    choice = choose_dtype("auto", CPU, BF16_CPU, FP, tmp_path)
    assert choice.dtype == torch.float32
    assert "failed" in choice.reason and "embedding_cosine" in choice.reason


def test_another_backbone_or_other_heads_have_no_gate(tmp_path: Path) -> None:
    write_gate(tmp_path, FP)
    byo = {**FP, "backbone": {**FP["backbone"], "embedding_hash": "cd"}}
    choice = choose_dtype("auto", CPU, BF16_CPU, byo, tmp_path)
    assert choice.dtype == torch.float32 and "another backbone" in choice.reason
    retrained = {**FP, "heads": {**FP["heads"], "ner": "89ab"}}
    choice = choose_dtype("auto", CPU, BF16_CPU, retrained, tmp_path)
    assert choice.dtype == torch.float32 and "heads differ" in choice.reason
    fewer = {**FP, "heads": {"sentiment": "0123"}}
    assert choose_dtype("auto", CPU, BF16_CPU, fewer, tmp_path).dtype == torch.float32


def test_a_gate_measured_with_float32_head_layers_no_longer_vouches(tmp_path: Path) -> None:
    """auto now runs the heads' layers in the backbone's half dtype: a gate written when they
    stayed float32 measured another configuration, so it must be re-run, not trusted."""
    write_gate(tmp_path, FP, head_layers="float32")
    choice = choose_dtype("auto", CPU, BF16_CPU, FP, tmp_path)
    assert choice.dtype == torch.float32 and "re-run" in choice.reason


def test_no_gate_file_keeps_float32(tmp_path: Path) -> None:
    choice = choose_dtype("auto", CPU, BF16_CPU, FP, tmp_path)
    assert choice.dtype == torch.float32 and "no bfloat16 fidelity gate" in choice.reason
    (tmp_path / "dtype_gate_cpu.json").write_text("{not json")
    assert choose_dtype("auto", CPU, BF16_CPU, FP, tmp_path).dtype == torch.float32


def test_a_cpu_without_native_bf16_stays_float32_even_with_a_passing_gate(tmp_path: Path) -> None:
    write_gate(tmp_path, FP)
    choice = choose_dtype("auto", CPU, Hardware(cpu_fast_bf16=False), FP, tmp_path)
    assert choice.dtype == torch.float32 and "no native bf16" in choice.reason


def test_gpus_gate_their_own_candidate(tmp_path: Path) -> None:
    """bf16 GPUs use a bfloat16 gate; a GPU without bf16 needs a float16 one; a CPU gate
    never applies to a GPU."""
    write_gate(tmp_path, FP, kind="cpu")
    assert choose_dtype("auto", CUDA, Hardware(cuda_bf16=True), FP, tmp_path).dtype == (
        torch.float32
    )
    write_gate(tmp_path, FP, kind="cuda", candidate="bfloat16")
    assert choose_dtype("auto", CUDA, Hardware(cuda_bf16=True), FP, tmp_path).dtype == (
        torch.bfloat16
    )
    old_gpu = Hardware(cuda_bf16=False)
    choice = choose_dtype("auto", CUDA, old_gpu, FP, tmp_path)
    assert choice.dtype == torch.float32 and "not float16" in choice.reason
    write_gate(tmp_path, FP, kind="cuda", candidate="float16")
    assert choose_dtype("auto", CUDA, old_gpu, FP, tmp_path).dtype == torch.float16


def test_an_explicit_dtype_is_kept_whatever_the_gate(tmp_path: Path) -> None:
    write_gate(tmp_path, FP)
    for name in ("float32", "bfloat16"):
        choice = choose_dtype(name, CPU, BF16_CPU, FP, tmp_path)
        assert choice.dtype == getattr(torch, name) and choice.setting == name


def test_a_retrained_head_changes_its_digest(tmp_path: Path, tiny_roberta: Backbone) -> None:
    heads = save_tiny_heads(tiny_roberta.info, tmp_path / "heads")
    before = head_digest(heads / "ner")
    weights = heads / "ner" / "head.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x01")
    assert head_digest(heads / "ner") != before


def test_auto_loads_the_backbone_in_the_gated_dtype(
    tiny_roberta: Backbone, tiny_roberta_dir: Path, tmp_path: Path
) -> None:
    heads = save_tiny_heads(tiny_roberta.info, tmp_path / "heads")
    settings = EngineSettings(backbone=str(tiny_roberta_dir), heads_dir=[heads], device="cpu")
    gates = tmp_path / "gates"
    write_gate(gates, fingerprint(tiny_roberta.info, [heads]))
    backbone, choice = load_backbone_with_dtype(settings, gates, BF16_CPU)
    assert backbone.dtype == torch.bfloat16 == choice.dtype
    assert backbone.info.fingerprint == tiny_roberta.info.fingerprint  # taken in float32
    assert choice.setting == "auto"
    plain, why = load_backbone_with_dtype(settings, gates, Hardware(cpu_fast_bf16=False))
    assert plain.dtype == torch.float32 and "no native bf16" in why.reason
    # the shipped gate is for the shipped MiniLM and heads, not for a backbone brought along
    byo = load_backbone(settings, SHIPPED_GATES, BF16_CPU)
    assert byo.dtype == torch.float32


def test_float16_on_cpu_is_still_refused() -> None:
    with pytest.raises(ValueError, match="CUDA"):
        load_backbone(EngineSettings(device="cpu", dtype="float16"))


def test_auto_is_the_default() -> None:
    assert EngineSettings().dtype == "auto"


def test_the_shipped_gate_vouches_for_the_shipped_heads(minilm: Backbone) -> None:
    """Retraining a shipped head (or moving the backbone) without re-running the gate would
    make auto fall back to float32 silently: re-run `sidetask bench dtype_gate --ship`."""
    path = gate_file("cpu")
    assert path.is_file(), "no shipped CPU gate: run sidetask bench dtype_gate --ship"
    gate = json.loads(path.read_text())["gate"]
    assert gate["fingerprint"] == fingerprint(minilm.info, [PRETRAINED_HEADS])
    assert gate["candidate"] == "bfloat16" and isinstance(gate["passed"], bool)
    assert gate["head_layers"] == "bfloat16", "gate from before head layers followed the backbone"


def test_a_bfloat16_backbone_still_returns_unit_length_float32_embeddings(
    tiny_roberta_dir: Path,
) -> None:
    """Pooling runs in float32: what auto serves in bf16 is still a unit vector."""
    settings = EngineSettings(backbone=str(tiny_roberta_dir), dtype="bfloat16", device="cpu")
    backbone = load_backbone(settings)
    batch = backbone.tokenizer(["a short text", "another, longer text " * 20], padding=True)
    ids = torch.tensor(batch["input_ids"])[:, : backbone.info.max_length]
    mask = torch.tensor(batch["attention_mask"])[:, : backbone.info.max_length]
    embedding = backbone.forward(ids, mask).embedding
    assert embedding is not None and embedding.dtype == torch.float32
    assert torch.allclose(embedding.norm(dim=1), torch.ones(2), atol=1e-6)
