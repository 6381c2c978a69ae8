"""The analytic FLOP floor agrees with torch's counter where the counter sees everything."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import flops, workload
from models.backbone import Backbone


def test_backbone_flops_match_torch_counter_on_short_inputs(tiny_roberta: Backbone) -> None:
    # at 4 tokens attention is ~2% of the work, so the counter (blind to CPU attention) and
    # the formula must agree closely on the matmuls
    ids, mask = workload.synthetic_batch(tiny_roberta, 3, 4)
    with FlopCounterMode(display=False) as counter:
        tiny_roberta.forward(ids, mask, main=False)
    counted = counter.get_total_flops()
    analytic = flops.backbone_flops(flops.EncoderShape.of(tiny_roberta), 3, 4)
    assert abs(analytic - counted) / counted < 0.05


def test_head_flops_follow_kind_and_active_layers(tiny_roberta: Backbone) -> None:
    info = tiny_roberta.info
    dense = workload.bench_heads(tiny_roberta, 3)
    cut = workload.bench_heads(tiny_roberta, 3, layer_logits=[0.0, 0.0, -1, -1], cutoff=5e-3)
    full = flops.heads_flops(dense, dense.names, info.hidden_size, 2, 16)
    fewer = flops.heads_flops(cut, cut.names, info.hidden_size, 2, 16)
    assert all(fewer[n] < full[n] for n in full)  # 2 of 4 states read
    seq, token = full["task00"], full["task02"]
    assert token > seq  # k=128 + a feed-forward layer vs k=64 attention
    # doubling the batch doubles everything
    twice = flops.heads_flops(dense, dense.names, info.hidden_size, 4, 16)
    assert twice["task00"] == 2 * full["task00"]
    assert torch.is_grad_enabled()  # nothing above changed global state
