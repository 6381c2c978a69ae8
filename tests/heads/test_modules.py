"""The head modules compute what the method describes, with the padding masked out."""

from __future__ import annotations

import pytest
import torch

from heads.modules import SequenceClassificationHead, TokenClassificationHead


@pytest.mark.parametrize(
    ("batch", "length", "k", "heads"), [(1, 1, 16, 2), (3, 7, 32, 4), (5, 130, 64, 4)]
)
def test_sequence_attention_equals_torch_multihead_attention(
    batch: int, length: int, k: int, heads: int
) -> None:
    torch.manual_seed(0)
    head = SequenceClassificationHead(k, 2, heads).eval()
    x = torch.randn(batch, length, k)
    mask = torch.ones(batch, length, dtype=torch.long)
    for b in range(1, batch):
        mask[b, max(1, length - 2 * b) :] = 0
    expected, _ = head.attention(x, x, x, key_padding_mask=mask == 0)
    got = head._self_attention(x, mask)
    keep = mask.bool()
    torch.testing.assert_close(got[keep], expected[keep], atol=1e-5, rtol=1e-5)


def test_encoder_block_equals_torch_transformer_encoder_layer() -> None:
    """``block="encoder"`` is a pre-norm GELU encoder layer, as torch builds it, then pooling."""
    torch.manual_seed(4)
    head = SequenceClassificationHead(16, 2, 4, block="encoder", ff_dim=24).eval()
    ref = torch.nn.TransformerEncoderLayer(
        16, 4, dim_feedforward=24, activation="gelu", batch_first=True, norm_first=True
    ).eval()
    ff = head.feed_forward
    assert isinstance(ff, torch.nn.Sequential)
    ref.self_attn.load_state_dict(head.attention.state_dict())
    ref.norm1.load_state_dict(head.norm_attention.state_dict())
    ref.norm2.load_state_dict(head.norm_feed_forward.state_dict())
    ref.linear1.load_state_dict(ff[0].state_dict())
    ref.linear2.load_state_dict(ff[3].state_dict())
    x = torch.randn(3, 9, 16)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:], mask[2, 2:] = 0, 0
    with torch.inference_mode():
        expected = ref(x, src_key_padding_mask=mask == 0)
        got = head._encode(x, mask)
    keep = mask.bool()
    torch.testing.assert_close(got[keep], expected[keep], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("block", ["attention", "encoder"])
def test_padding_does_not_change_a_sequence_answer(block: str) -> None:
    torch.manual_seed(1)
    head = SequenceClassificationHead(16, 3, 2, block=block, ff_dim=32).eval()
    x = torch.randn(1, 5, 16)
    padded = torch.cat([x, torch.randn(1, 4, 16)], dim=1)
    mask = torch.tensor([[1] * 5 + [0] * 4])
    with torch.inference_mode():
        alone = head(x, torch.ones(1, 5, dtype=torch.long))
        with_pad = head(padded, mask)
    torch.testing.assert_close(alone, with_pad, atol=1e-5, rtol=1e-5)


def test_padding_does_not_change_token_answers() -> None:
    torch.manual_seed(2)
    head = TokenClassificationHead(16, 5, 2, ff_dim=32).eval()
    x = torch.randn(1, 6, 16)
    padded = torch.cat([x, torch.randn(1, 3, 16)], dim=1)
    mask = torch.tensor([[1] * 6 + [0] * 3])
    with torch.inference_mode():
        alone = head(x, torch.ones(1, 6, dtype=torch.long))
        with_pad = head(padded, mask)[:, :6]
    torch.testing.assert_close(alone, with_pad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("lengths", [[9, 4, 1, 9], [3], [7, 7], [12, 2, 5, 11, 6]])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_token_head_at_inference_skips_pads_and_answers_as_the_masked_layer(
    lengths: list[int], dtype: torch.dtype
) -> None:
    torch.manual_seed(len(lengths))
    head = TokenClassificationHead(16, 5, 2, ff_dim=48).eval().to(dtype)
    x = torch.randn(len(lengths), max(lengths), 16, dtype=dtype)
    mask = (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()
    real = mask.bool()
    with torch.inference_mode():
        fast = head(x, mask)
        masked = head.classifier(head.encoder(x, src_key_padding_mask=~real))
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(fast[real], masked[real], atol=tol, rtol=tol)
    with torch.no_grad():  # the same head while training evaluates (no inference mode)
        torch.testing.assert_close(head(x, mask)[real], fast[real], atol=tol, rtol=tol)


def test_training_mode_uses_dropout_and_eval_is_deterministic() -> None:
    torch.manual_seed(3)
    head = SequenceClassificationHead(16, 2, 2, dropout=0.5)
    x = torch.randn(2, 6, 16)
    mask = torch.ones(2, 6, dtype=torch.long)
    head.train()
    assert not torch.equal(head(x, mask), head(x, mask))
    head.eval()
    assert torch.equal(head(x, mask), head(x, mask))


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_windows_of_one_text_pool_like_the_whole_text(pooling: str) -> None:
    """A long text's windows, combined, give the pooled vector of all its tokens at once
    (here with the attention outputs as given: windows only split the pooling)."""
    torch.manual_seed(0)
    head = SequenceClassificationHead(8, 2, num_heads=2, pooling=pooling).eval()
    head._encode = lambda x, mask: x  # type: ignore[method-assign]
    tokens = torch.randn(1, 11, 8)
    whole = head.pooled_sums(tokens, torch.ones(1, 11))
    # two padded windows (7 + 4 real tokens), padding holding large values that must not count
    windows = torch.full((2, 7, 8), 50.0)
    windows[0], windows[1, :4] = tokens[0, :7], tokens[0, 7:]
    mask = torch.zeros(2, 7)
    mask[0], mask[1, :4] = 1, 1
    pooled, counts = head.pooled_sums(windows, mask)
    combined = head.combine((pooled[:1], counts[:1]), (pooled[1:], counts[1:]))
    folded = head.combine_windows(pooled, counts, torch.tensor([0, 0]), 1)
    for got in (combined, folded):
        torch.testing.assert_close(got[0], whole[0])
        torch.testing.assert_close(got[1], whole[1])
    expected = tokens[0].amax(0) if pooling == "max" else tokens[0].mean(0)
    torch.testing.assert_close(
        head.classify(*folded), head.classifier(expected[None]), rtol=1e-5, atol=1e-5
    )


def test_unknown_pooling_is_refused() -> None:
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassificationHead(8, 2, pooling="median")


def test_unknown_block_is_refused() -> None:
    with pytest.raises(ValueError, match="block"):
        SequenceClassificationHead(8, 2, block="lstm")
