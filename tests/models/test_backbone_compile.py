"""`compile`: torch.compile per layer answers like eager, keeps the taps, compiles up front."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks import workload
from models.backbone import Backbone


def _run(backbone: Backbone, ids: torch.Tensor, mask: torch.Tensor, **kw: object) -> tuple:
    seen: dict[int, torch.Tensor] = {}
    out = backbone.forward(ids, mask, consumer=lambda i, h: seen.__setitem__(i, h.clone()), **kw)
    return out, seen


@pytest.mark.slow
def test_compiled_layers_answer_like_eager_and_still_feed_the_taps(tiny_roberta_dir: Path) -> None:
    from torch._dynamo.utils import counters

    eager = Backbone.load(tiny_roberta_dir)
    compiled = Backbone.load(tiny_roberta_dir)
    compiled.compile_layers()
    assert compiled.compiled and compiled.compile_warmup() > 0
    graphs = counters["stats"]["unique_graphs"]
    for batch, length in ((3, 11), (2, 29)):  # shapes the warm-up did not see
        ids, mask = workload.synthetic_batch(eager, batch, length)
        mask[0, length // 2 :] = 0
        (a, taps_a), (b, taps_b) = _run(eager, ids, mask), _run(compiled, ids, mask)
        torch.testing.assert_close(b.embedding, a.embedding, atol=1e-4, rtol=1e-4)
        assert taps_b.keys() == taps_a.keys() == set(range(len(eager.layers) + 1))
        for i, hidden in taps_a.items():
            torch.testing.assert_close(taps_b[i], hidden, atol=1e-4, rtol=1e-4)
    assert counters["stats"]["unique_graphs"] == graphs  # new lengths: no recompile
    early, taps = _run(compiled, ids, mask, last_layer=1, main=False)
    assert early.layers_run == 1 and set(taps) == {0, 1}
