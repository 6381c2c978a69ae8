"""The padding-free pass gives the padded pass's hidden states, taps and early exit."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from conftest import random_head

from models.accumulator import AccumulatorPlan, StreamingAccumulator
from models.backbone import Backbone
from models.unpadded import pack, supports_unpadded

#: Row lengths of odd micro-batches: one row, equal rows, a long row among short ones,
#: rows of two tokens (specials only), many distinct lengths.
SHAPES = [[7], [5, 5, 5], [60, 3, 17, 2], [2, 2, 9], [13, 11, 11, 8, 31, 4, 4, 19]]
#: (dtype, atol, rtol): the padded and the packed pass multiply matrices of different
#: shapes, so their sums may be rounded differently.
DTYPES = [(torch.float32, 1e-5, 1e-5), (torch.bfloat16, 6e-2, 2e-2)]


def _variants(base: Backbone, dtype: torch.dtype) -> tuple[Backbone, Backbone]:
    """(padded, unpadded) backbones sharing one model in ``dtype``; ``base`` is untouched."""
    model = base.model if dtype == base.dtype else copy.deepcopy(base.model).to(dtype=dtype)
    padded = Backbone(model, base.tokenizer, base.info.name, base.info.max_length)
    unpadded = Backbone(model, base.tokenizer, base.info.name, base.info.max_length)
    assert unpadded.use_unpadded()
    return padded, unpadded


def _batch(backbone: Backbone, lengths: list[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded random windows ([CLS] ... [SEP]) of the given lengths."""
    tok = backbone.tokenizer
    first = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
    last = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
    gen = torch.Generator().manual_seed(seed)
    longest = min(max(lengths), backbone.info.max_length)
    ids = torch.full((len(lengths), longest), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        n = min(n, longest)
        ids[row, :n] = torch.randint(5, min(len(tok), 20000), (n,), generator=gen)
        ids[row, 0], ids[row, n - 1] = first, last
        mask[row, :n] = 1
    return ids, mask


def _taps(backbone: Backbone, ids: torch.Tensor, mask: torch.Tensor, **kw: object) -> tuple:
    seen: dict[int, torch.Tensor] = {}
    out = backbone.forward(ids, mask, lambda i, z: seen.__setitem__(i, z.clone()), **kw)  # type: ignore[arg-type]
    return out, seen


@pytest.mark.parametrize("dtype,atol,rtol", DTYPES, ids=["float32", "bfloat16"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", ["tiny_roberta", "minilm"])
def test_unpadded_pass_gives_the_padded_hidden_states(
    name: str,
    shape: list[int],
    dtype: torch.dtype,
    atol: float,
    rtol: float,
    request: pytest.FixtureRequest,
) -> None:
    padded, unpadded = _variants(request.getfixturevalue(name), dtype)
    ids, mask = _batch(padded, shape, seed=len(shape))
    want, want_taps = _taps(padded, ids, mask)
    got, got_taps = _taps(unpadded, ids, mask)
    real = mask.bool()
    assert sorted(got_taps) == sorted(want_taps) == list(range(padded.info.num_states))
    assert got.layers_run == want.layers_run == padded.info.num_layers
    for i in want_taps:
        torch.testing.assert_close(got_taps[i][real], want_taps[i][real], atol=atol, rtol=rtol)
        if i > 0:  # pad positions hold zeros, never values from other rows
            assert not got_taps[i][~real].any()
    assert got.last_hidden is not None and want.last_hidden is not None
    torch.testing.assert_close(got.last_hidden[real], want.last_hidden[real], atol=atol, rtol=rtol)
    assert got.embedding is not None and want.embedding is not None
    torch.testing.assert_close(got.embedding, want.embedding, atol=atol, rtol=rtol)


@pytest.mark.parametrize("dtype,atol,rtol", DTYPES, ids=["float32", "bfloat16"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_the_accumulator_takes_packed_rows_and_gives_the_padded_features(
    minilm: Backbone, shape: list[int], dtype: torch.dtype, atol: float, rtol: float
) -> None:
    padded, unpadded = _variants(minilm, dtype)
    info = padded.info
    tasks = [
        random_head(info, "seq", k=16, seed=1).projection(),
        random_head(info, "tok", kind="token", k=24, seed=2, positions=True).projection(),
    ]
    plan = AccumulatorPlan.build(tasks, dtype=dtype)
    ids, mask = _batch(padded, shape, seed=3)
    runs = {}
    for name, backbone in (("padded", padded), ("packed", unpadded)):
        acc = StreamingAccumulator(plan, ids.shape[0], ids.shape[1])
        backbone.forward(ids, mask, acc, plan.last_layer, main=False)
        runs[name] = acc
    packed = runs["packed"]
    assert packed.rows is not None and packed.buffer.shape[0] == int(mask.sum())  # no pad rows
    assert runs["padded"].rows is None
    real = mask.bool()
    want, got = runs["padded"].features(), packed.features()
    for task in plan.tasks:
        torch.testing.assert_close(
            got[task.name][real], want[task.name][real], atol=atol, rtol=rtol
        )
        at_pads = got[task.name][~real]
        if task.positions is not None:  # added at every position, pads too
            at_pads = at_pads - task.positions[: ids.shape[1]].expand(*ids.shape, -1)[~real]
        assert not at_pads.any()  # nothing was computed for pad tokens


def test_the_packing_must_come_before_the_first_layer(tiny_roberta: Backbone) -> None:
    info = tiny_roberta.info
    plan = AccumulatorPlan.build([random_head(info, "seq", k=8, seed=1).projection()])
    acc = StreamingAccumulator(plan, 1, 4)
    acc(0, torch.zeros(1, 4, info.hidden_size))
    with pytest.raises(RuntimeError, match="before the first layer"):
        acc.use_packed_rows(torch.arange(4))


def test_unpadded_early_exit_skips_the_later_layers(tiny_roberta: Backbone) -> None:
    _, unpadded = _variants(tiny_roberta, tiny_roberta.dtype)
    ids, mask = _batch(unpadded, [9, 4, 6], seed=1)
    calls: list[int] = []
    second: Any = unpadded.layers[1]
    hook = second.output.register_forward_hook(lambda *a: calls.append(1))
    try:
        out, seen = _taps(unpadded, ids, mask, last_layer=1, main=False)
    finally:
        hook.remove()
    assert out.layers_run == 1 and out.last_hidden is None
    assert sorted(seen) == [0, 1]
    assert calls == []  # layer 2 never ran
    out, seen = _taps(unpadded, ids, mask, last_layer=0, main=False)
    assert out.layers_run == 0 and sorted(seen) == [0]


def test_models_without_the_bert_layer_layout_keep_the_padded_pass(tiny_bart: Backbone) -> None:
    other = Backbone(tiny_bart.model, tiny_bart.tokenizer, "bart", tiny_bart.info.max_length)
    assert not supports_unpadded(other.model, other.layers)
    assert not other.use_unpadded()
    assert other.unpadded is False


def test_an_encoder_with_an_embedding_projection_keeps_the_padded_pass() -> None:
    from transformers import ElectraConfig, ElectraModel

    config = ElectraConfig(
        vocab_size=50,
        embedding_size=16,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    model = ElectraModel(config)
    assert not supports_unpadded(model, model.encoder.layer)
    config.embedding_size = 32
    same_width = ElectraModel(config)
    assert supports_unpadded(same_width, same_width.encoder.layer)


def test_pack_orders_rows_longest_first_in_runs_of_one_length() -> None:
    mask = torch.tensor(
        [
            [1, 1, 0, 0],
            [1, 1, 1, 1],
            [0, 1, 1, 0],  # any padding side: only the mask decides
            [1, 1, 1, 0],
        ]
    )
    packing = pack(mask)
    assert packing.runs == ((0, 1, 4), (4, 1, 3), (7, 2, 2))
    assert packing.index.tolist() == [4, 5, 6, 7, 12, 13, 14, 0, 1, 9, 10]
    assert packing.tokens == int(mask.sum())


def test_fused_qkv_shares_the_projections_memory_and_a_later_move_falls_back(
    tiny_roberta: Backbone,
) -> None:
    from models.unpadded import _fused

    padded, unpadded = _variants(tiny_roberta, torch.float32)
    own: Any = unpadded.layers[0].attention.self
    fused = _fused(own)
    assert fused is not None  # use_unpadded() fused Q|K|V ...
    assert (
        own.key.weight.data_ptr() == fused[0][own.key.weight.shape[0] :].data_ptr()
    )  # ... in place
    ids, mask = _batch(padded, [9, 4, 4], seed=3)
    real = mask.bool()
    moved = copy.deepcopy(unpadded.model).to(dtype=torch.float64).to(dtype=torch.float32)
    after = Backbone(moved, tiny_roberta.tokenizer, tiny_roberta.info.name, 64)
    after.unpadded = True  # without use_unpadded(): its parameters are no longer views
    assert _fused(after.layers[0].attention.self) is None
    want = padded.forward(ids, mask).last_hidden
    got = after.forward(ids, mask).last_hidden
    assert want is not None and got is not None
    torch.testing.assert_close(got[real], want[real], atol=1e-5, rtol=1e-5)
