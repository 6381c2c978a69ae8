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
