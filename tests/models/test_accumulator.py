"""The streaming accumulator equals the stacked research path, and skips what it can."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import random_head

from models import accumulator as acc_mod
from models.accumulator import (
    AccumulatorPlan,
    StreamingAccumulator,
    TaskProjection,
    mixing_weights,
    resolve_kernel,
)
from models.backbone import Backbone
from models.reference import reference_features
from models.windows import collate, encode_texts, make_windows

TEXTS = [
    "Hello world, Paris is nice.",
    "a",
    "",
    "the movie was great and rather long " * 6,
    "  spaces   and\ttabs  ",
]


def _tasks(backbone: Backbone, cutoff: float = 0.0) -> list[TaskProjection]:
    info = backbone.info
    heads = [
        random_head(info, "alpha", k=16, seed=1, cutoff=cutoff),
        random_head(info, "beta", kind="token", k=32, seed=2, positions=True, cutoff=cutoff),
        random_head(info, "gamma", k=24, seed=3),
    ]
    return [h.projection() for h in heads]


def _run(backbone: Backbone, texts: list[str], tasks: list[TaskProjection], overlap: int = 8):
    enc = encode_texts(backbone.tokenizer, texts)
    windows = make_windows(enc, backbone.tokenizer, backbone.info.max_length, overlap)
    ids, mask = collate(windows, backbone.tokenizer.pad_token_id)
    plan = AccumulatorPlan.build(tasks)
    acc = StreamingAccumulator(plan, ids.shape[0], ids.shape[1])
    out = backbone.forward(ids, mask, acc, plan.last_layer, main=False)
    return acc, out, ids, mask


@pytest.mark.parametrize("name", ["tiny_roberta", "tiny_bart", "minilm"])
@pytest.mark.parametrize("n_texts", [1, 3, 5])
def test_streaming_equals_stacked_reference(
    name: str, n_texts: int, request: pytest.FixtureRequest
) -> None:
    backbone: Backbone = request.getfixturevalue(name)
    tasks = _tasks(backbone)
    acc, _, ids, mask = _run(backbone, TEXTS[:n_texts], tasks)
    ref = reference_features(backbone, ids, mask, tasks)
    got = acc.features()
    assert set(got) == {"alpha", "beta", "gamma"}
    for t in tasks:
        assert got[t.name].shape == (ids.shape[0], ids.shape[1], t.k)
        torch.testing.assert_close(got[t.name], ref[t.name], atol=1e-5, rtol=1e-5)


def test_zero_weight_layers_are_skipped_and_change_nothing(
    tiny_roberta: Backbone, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tiny_roberta.info
    # weight only on Z_1 and Z_2 for both tasks: Z_0 and Z_3 must not be touched
    logits = [-50.0, 0.0, 0.0, -50.0]
    tasks = [
        random_head(info, "a", k=16, seed=5, cutoff=0.01, layer_logits=logits).projection(),
        random_head(info, "b", k=8, seed=6, cutoff=0.01, layer_logits=logits).projection(),
    ]
    assert tasks[0].layer_weights[0] == 0 and tasks[0].layer_weights[3] == 0
    calls: list[int] = []
    real = acc_mod.accumulate_torch

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(acc_mod, "accumulate_torch", counting)
    acc, out, ids, mask = _run(tiny_roberta, TEXTS, tasks)
    assert acc.updated_layers == [1, 2]
    assert len(calls) == 2  # one fused matmul per needed layer, none for zero-weight layers
    assert out.layers_run == 2  # early exit after Z_2
    ref = reference_features(tiny_roberta, ids, mask, tasks)
    for t in tasks:
        torch.testing.assert_close(acc.features()[t.name], ref[t.name], atol=1e-5, rtol=1e-5)


def test_early_exit_gives_the_same_features_as_a_full_pass(minilm: Backbone) -> None:
    info = minilm.info
    logits = [0.0, 0.0, 0.5, -40.0, -40.0, -40.0, -40.0]
    task = random_head(info, "early", k=16, cutoff=0.01, layer_logits=logits).projection()
    plan = AccumulatorPlan.build([task])
    assert plan.last_layer == 2
    enc = encode_texts(minilm.tokenizer, TEXTS)
    windows = make_windows(enc, minilm.tokenizer, info.max_length, 8)
    ids, mask = collate(windows, minilm.tokenizer.pad_token_id)
    early = StreamingAccumulator(plan, *ids.shape)
    full = StreamingAccumulator(plan, *ids.shape)
    out_early = minilm.forward(ids, mask, early, plan.last_layer, main=False)
    out_full = minilm.forward(ids, mask, full, None, main=False)
    assert (out_early.layers_run, out_full.layers_run) == (2, 6)
    torch.testing.assert_close(early.features()["early"], full.features()["early"], atol=0, rtol=0)


def test_mixing_weights_cut_off_and_renormalise() -> None:
    logits = torch.tensor([0.0, 1.0, 2.0, -3.0])
    w = mixing_weights(logits, alpha=2.0, cutoff=0.01)  # drops only index 3
    assert w[3] == 0
    assert torch.isclose(w.sum(), torch.tensor(1.0))
    plain = torch.softmax(2.0 * logits, -1)
    kept = plain.clone()
    kept[3] = 0
    torch.testing.assert_close(w, kept / kept.sum())
    # a cutoff above every weight still keeps the largest one
    assert mixing_weights(logits, 1.0, 0.99).tolist() == [0.0, 0.0, 1.0, 0.0]


def test_plan_concatenates_tasks_with_different_k(tiny_roberta: Backbone) -> None:
    tasks = _tasks(tiny_roberta)
    plan = AccumulatorPlan.build(tasks)
    assert plan.total_k == 16 + 32 + 24
    assert plan.offsets == (0, 16, 48)
    layer = plan.layers[0]
    assert layer.weight.shape == (72, tiny_roberta.info.hidden_size)
    assert [s.size for s in layer.segments] == [16, 32, 24]


def test_plan_refuses_mismatched_tasks(tiny_roberta: Backbone, minilm: Backbone) -> None:
    a = random_head(tiny_roberta.info, "a").projection()
    b = random_head(minilm.info, "b").projection()
    with pytest.raises(ValueError, match="share the backbone"):
        AccumulatorPlan.build([a, b])
    with pytest.raises(ValueError, match="at least one task"):
        AccumulatorPlan.build([])


def test_kernel_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert resolve_kernel("auto", cpu) == "torch"
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        resolve_kernel("triton", cpu)
    with pytest.raises(ValueError, match="kernel must be one of"):
        resolve_kernel("magic", cpu)


def test_the_environment_never_overrides_the_kernel_argument(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The choice comes through Settings (flags win over SIDETASK_KERNEL), not os.environ."""
    cpu = torch.device("cpu")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setenv("SIDETASK_KERNEL", "torch")
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        resolve_kernel("triton", cpu)  # asked for triton: the variable does not turn it off
    monkeypatch.setenv("SIDETASK_KERNEL", "magic")
    assert resolve_kernel("torch", cpu) == "torch"
    models = Path(__file__).resolve().parents[2] / "models"
    readers = [p for p in models.rglob("*.py") if "SIDETASK_" in p.read_text()]
    assert readers == []
