"""head_dtype / accumulator_dtype: bf16 computes faster on CPUs with bf16 instructions and
answers like float32; auto picks bf16 only for the accumulator's projection, only where fast."""

from __future__ import annotations

import pytest
import torch

from engine import loading
from engine.core import Engine, EngineConfig
from engine.loading import (
    load_backbone,
    load_heads,
    resolve_accumulator_dtype,
    resolve_head_dtype,
)
from engine.settings import EngineSettings
from models.backbone import Backbone
from server.settings import Settings

TEXTS = [
    "Maria Schmidt flew from Berlin to Paris on Monday to meet the board of Acme Corp.",
    "The film was slow at first, but the last hour was moving and beautifully shot.",
    "I would not recommend this hotel: the room was dirty and the staff were rude.",
    "Him was went to the store yesterday quickly the.",
    "Shares of Northwind fell sharply after the company cut its forecast for the year.",
]


def _answers(
    minilm: Backbone, head_dtype: str, accumulator_dtype: str = "auto"
) -> list[dict[str, object]]:
    settings = Settings(head_dtype=head_dtype, accumulator_dtype=accumulator_dtype)  # type: ignore[arg-type]
    heads = load_heads(settings, minilm)
    engine = Engine(minilm, heads, EngineConfig.from_settings(EngineSettings(kernel="torch")))
    return engine.analyze(TEXTS).results


def test_bf16_heads_keep_layers_in_bf16_and_layer_weights_in_float32(minilm: Backbone) -> None:
    heads = load_heads(Settings(head_dtype="bfloat16", accumulator_dtype="auto"), minilm)
    assert heads.heads, "the shipped heads should load"
    for head in heads.heads.values():
        assert {p.dtype for p in head.head.parameters()} == {torch.bfloat16}
        assert head.mixer.layer_logits.dtype == torch.float32
    plan = heads.plan_for(heads.names)
    assert {layer.weight.dtype for layer in plan.layers.values()} == {torch.bfloat16}


@pytest.mark.parametrize(
    ("head_dtype", "accumulator_dtype"), [("bfloat16", "auto"), ("float32", "bfloat16")]
)
def test_bf16_heads_or_accumulator_give_the_float32_answers(
    minilm: Backbone, head_dtype: str, accumulator_dtype: str
) -> None:
    exact = _answers(minilm, "float32", "float32")
    fast = _answers(minilm, head_dtype, accumulator_dtype)
    for a, b in zip(exact, fast, strict=True):
        assert a.keys() == b.keys()
        for task in ("sentiment", "cola"):
            assert a[task].label == b[task].label  # type: ignore[union-attr]
            assert abs(a[task].score - b[task].score) < 0.03  # type: ignore[union-attr]
        spans = [[(e.label, e.start, e.end) for e in x["ner"]] for x in (a, b)]  # type: ignore[union-attr]
        assert spans[0] == spans[1]


def test_float16_on_cpu_is_refused_with_the_alternatives() -> None:
    with pytest.raises(ValueError, match="bfloat16"):
        load_backbone(Settings(device="cpu", dtype="float16"))


def test_a_bf16_backbone_on_cpu_serves_the_shipped_heads() -> None:
    backbone = load_backbone(Settings(device="cpu", dtype="bfloat16"))
    heads = load_heads(Settings(head_dtype="bfloat16"), backbone)
    engine = Engine(backbone, heads, EngineConfig.from_settings(EngineSettings(kernel="torch")))
    result = engine.analyze(TEXTS[:2], ["sentiment", "ner", "embedding"])
    assert result.class_answers("sentiment")[1].label == "positive"
    assert {e.text for e in result.results[0]["ner"]} >= {"Berlin", "Paris"}  # type: ignore[union-attr]
    assert len(result.embeddings("embedding")[0]) == 384


def test_auto_head_layers_follow_a_half_backbone_and_explicit_choices_win() -> None:
    assert resolve_head_dtype("auto", torch.float32) is None  # float32 layers
    assert resolve_head_dtype("auto", torch.bfloat16) == torch.bfloat16  # as the gate measured
    assert resolve_head_dtype("auto", torch.float16) == torch.float16
    assert resolve_head_dtype("float32", torch.bfloat16) == torch.float32
    assert resolve_head_dtype("bfloat16", torch.float32) == torch.bfloat16


def test_bf16_accumulator_keeps_float32_head_layers(minilm: Backbone) -> None:
    heads = load_heads(Settings(accumulator_dtype="bfloat16"), minilm)
    for head in heads.heads.values():
        assert {p.dtype for p in head.head.parameters()} == {torch.float32}
    plan = heads.plan_for(heads.names)
    assert {layer.weight.dtype for layer in plan.layers.values()} == {torch.bfloat16}


@pytest.mark.parametrize(("fast", "expected"), [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_accumulator_is_bf16_only_on_cpus_with_fast_bf16(
    minilm: Backbone, monkeypatch: pytest.MonkeyPatch, fast: bool, expected: torch.dtype
) -> None:
    monkeypatch.setattr(loading, "cpu_has_fast_bf16", lambda: fast)
    # (the suite pins both to float32 in the environment: auto is passed explicitly here)
    auto = Settings(head_dtype="auto", accumulator_dtype="auto")
    assert resolve_accumulator_dtype(auto, minilm) == expected
    # an explicit head_dtype or accumulator_dtype wins over the CPU
    pinned = Settings(head_dtype="float32", accumulator_dtype="auto")
    assert resolve_accumulator_dtype(pinned, minilm) == torch.float32
    acc = Settings(accumulator_dtype="float32")
    assert resolve_accumulator_dtype(acc, minilm) == torch.float32
    acc = Settings(head_dtype="float32", accumulator_dtype="bfloat16")
    assert resolve_accumulator_dtype(acc, minilm) == torch.bfloat16


def test_float16_accumulator_on_cpu_is_refused(minilm: Backbone) -> None:
    with pytest.raises(ValueError, match="bfloat16"):
        resolve_accumulator_dtype(Settings(accumulator_dtype="float16"), minilm)
