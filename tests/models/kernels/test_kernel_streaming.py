"""End to end: the streaming accumulator with the Triton kernel forced equals the stacked path."""

from __future__ import annotations

import pytest
import torch
from conftest import random_head

from models.accumulator import AccumulatorPlan, StreamingAccumulator
from models.backbone import Backbone
from models.reference import reference_features

pytestmark = pytest.mark.usefixtures("interpreter")


def test_streaming_with_triton_equals_stacked_reference(
    tiny_roberta: Backbone,
) -> None:
    info = tiny_roberta.info
    heads = [
        random_head(info, "sentiment", k=16, seed=1),
        random_head(info, "ner", kind="token", k=32, seed=2, positions=True),
        # a sharp cutoff leaves this task only some layers: others skip it in the launch
        random_head(info, "cola", k=24, seed=3, cutoff=0.3, layer_logits=[0, 0, 3, 0]),
    ]
    tasks = [h.projection() for h in heads]
    plan = AccumulatorPlan.build(tasks)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, len(tiny_roberta.tokenizer), (2, 11), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    acc = StreamingAccumulator(plan, 2, 11, kernel="triton")
    assert acc.kernel == "triton"
    tiny_roberta.forward(ids, mask, acc, plan.last_layer, main=False)
    expected = reference_features(tiny_roberta, ids, mask, tasks)
    got = acc.features()
    assert set(got) == {"sentiment", "ner", "cola"}
    for name, features in got.items():
        torch.testing.assert_close(features, expected[name], atol=1e-4, rtol=1e-4)
