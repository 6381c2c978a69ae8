"""On CUDA the padding-free pass gives the padded pass's hidden states in half precision too.

Run by benchmarks/gpu_check.py's tests step (found by its CUDA marker); skipped here.
"""

from __future__ import annotations

import pytest
import torch

from models.backbone import Backbone
from tests.models.test_unpadded import SHAPES, _batch, _taps, _variants

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

#: (dtype, atol, rtol) as on CPU: one rounding step of the hidden state's magnitude.
HALF = [(torch.float16, 1e-2, 1e-2), (torch.bfloat16, 6e-2, 2e-2)]


@pytest.mark.parametrize("dtype,atol,rtol", HALF, ids=["float16", "bfloat16"])
def test_unpadded_pass_matches_on_cuda(
    minilm: Backbone, dtype: torch.dtype, atol: float, rtol: float
) -> None:
    model = minilm.model
    on_gpu = Backbone(model.to("cuda"), minilm.tokenizer, minilm.info.name, minilm.info.max_length)
    try:
        padded, unpadded = _variants(on_gpu, dtype)
        for seed, shape in enumerate(SHAPES):
            ids, mask = (t.cuda() for t in _batch(padded, shape, seed))
            want, want_taps = _taps(padded, ids, mask)
            got, got_taps = _taps(unpadded, ids, mask)
            real = mask.bool()
            for i in want_taps:
                torch.testing.assert_close(
                    got_taps[i][real], want_taps[i][real], atol=atol, rtol=rtol
                )
            assert got.embedding is not None and want.embedding is not None
            torch.testing.assert_close(got.embedding, want.embedding, atol=atol, rtol=rtol)
    finally:
        model.to("cpu")


@pytest.mark.parametrize("kernel", ["torch", "triton"])
def test_packed_accumulator_rows_match_the_padded_features_on_cuda(
    minilm: Backbone, kernel: str
) -> None:
    """The fused kernel and the torch path take the packed rows of the padding-free pass."""
    from conftest import random_head

    from models.accumulator import AccumulatorPlan, StreamingAccumulator

    if kernel == "triton":
        pytest.importorskip("triton")
    model = minilm.model
    on_gpu = Backbone(model.to("cuda"), minilm.tokenizer, minilm.info.name, minilm.info.max_length)
    try:
        padded, unpadded = _variants(on_gpu, torch.bfloat16)
        tasks = [
            random_head(minilm.info, "seq", k=16, seed=1).projection(),
            random_head(minilm.info, "tok", kind="token", k=24, seed=2).projection(),
        ]
        plan = AccumulatorPlan.build(tasks, device="cuda", dtype=torch.bfloat16)
        for seed, shape in enumerate(SHAPES):
            ids, mask = (t.cuda() for t in _batch(padded, shape, seed))
            features = []
            for backbone in (padded, unpadded):
                rows, length = ids.shape
                acc = StreamingAccumulator(plan, rows, length, device="cuda", kernel=kernel)
                backbone.forward(ids, mask, acc, plan.last_layer, main=False)
                features.append(acc.features())
            real = mask.bool()
            for name in features[0]:
                torch.testing.assert_close(
                    features[1][name][real], features[0][name][real], atol=6e-2, rtol=2e-2
                )
    finally:
        model.to("cpu")
