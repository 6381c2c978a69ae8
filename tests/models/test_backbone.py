"""The backbone hands every hidden state to the taps, once, and stops early when allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.backbone import Backbone
from models.reference import all_hidden_states
from models.windows import collate, encode_texts, make_windows

TEXTS = ["Hello world, Paris is nice.", "a", "the movie was great and rather long " * 4]


def _batch(backbone: Backbone, texts: list[str] = TEXTS) -> tuple[torch.Tensor, torch.Tensor]:
    enc = encode_texts(backbone.tokenizer, texts)
    windows = make_windows(enc, backbone.tokenizer, backbone.info.max_length, 16, first_only=True)
    return collate(windows, backbone.tokenizer.pad_token_id)


@pytest.mark.parametrize("name", ["tiny_roberta", "tiny_bart", "minilm"])
def test_taps_see_exactly_the_models_hidden_states(
    name: str, request: pytest.FixtureRequest
) -> None:
    backbone: Backbone = request.getfixturevalue(name)
    ids, mask = _batch(backbone)
    seen: dict[int, torch.Tensor] = {}
    out = backbone.forward(ids, mask, lambda i, z: seen.__setitem__(i, z.clone()), main=False)
    expected = all_hidden_states(backbone, ids, mask)
    assert sorted(seen) == list(range(backbone.info.num_states))
    assert out.layers_run == backbone.info.num_layers
    for i, z in enumerate(expected):
        torch.testing.assert_close(seen[i], z, atol=0, rtol=0)


@pytest.mark.parametrize("name", ["tiny_roberta", "tiny_bart", "minilm"])
def test_early_exit_runs_only_the_needed_layers(name: str, request: pytest.FixtureRequest) -> None:
    backbone: Backbone = request.getfixturevalue(name)
    ids, mask = _batch(backbone)
    calls: list[int] = []
    hook = backbone.layers[-1].register_forward_hook(lambda *a: calls.append(1))
    try:
        out = backbone.forward(ids, mask, lambda i, z: None, last_layer=1, main=False)
    finally:
        hook.remove()
    assert out.layers_run == 1
    assert calls == []  # the last layer never ran


def test_main_task_ignores_early_exit(tiny_roberta: Backbone) -> None:
    ids, mask = _batch(tiny_roberta)
    out = tiny_roberta.forward(ids, mask, lambda i, z: None, last_layer=1, main=True)
    assert out.layers_run == tiny_roberta.info.num_layers
    assert out.embedding is not None


def test_embedding_equals_sentence_transformers(minilm: Backbone) -> None:
    from sentence_transformers import SentenceTransformer

    from models.defaults import default_backbone_path

    texts = [*TEXTS, "word " * 400]  # the last one is truncated at 256 tokens by both
    ids, mask = _batch(minilm, texts)
    mine = minilm.forward(ids, mask).embedding
    st = SentenceTransformer(str(default_backbone_path()), device="cpu")
    theirs = st.encode(texts, convert_to_tensor=True)
    assert mine is not None
    torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=1e-5)


def test_bart_generation_runs_the_encoder_once(tiny_bart: Backbone) -> None:
    ids, mask = _batch(tiny_bart)
    calls: list[int] = []
    hook = tiny_bart.layers[0].register_forward_hook(lambda *a: calls.append(1))
    try:
        out = tiny_bart.forward(ids, mask, lambda i, z: None, generate_kwargs={"max_length": 8})
    finally:
        hook.remove()
    assert out.generated is not None
    assert len(calls) == 1


def test_backbone_info_describes_the_model(minilm: Backbone, tiny_bart: Backbone) -> None:
    assert minilm.info.model_type == "bert"
    assert (minilm.info.hidden_size, minilm.info.num_layers, minilm.info.max_length) == (
        384,
        6,
        256,
    )
    assert minilm.info.main_task == "embedding"
    assert tiny_bart.info.main_task == "generate"
    assert minilm.info.fingerprint != tiny_bart.info.fingerprint


def test_loading_a_missing_folder_says_so(tmp_path: object) -> None:
    from models.backbone import BackboneError

    with pytest.raises(BackboneError, match="cannot load backbone"):
        Backbone.load(f"{tmp_path}/nope")


def test_parameters_are_frozen(tiny_roberta: Backbone) -> None:
    assert not any(p.requires_grad for p in tiny_roberta.model.parameters())
    assert not tiny_roberta.model.training


def test_the_fingerprint_does_not_depend_on_the_serving_dtype(tiny_roberta_dir: Path) -> None:
    """Heads trained on the float32 backbone load onto the same checkpoint served in bf16."""
    exact = Backbone.load(tiny_roberta_dir)
    fast = Backbone.load(tiny_roberta_dir, dtype=torch.bfloat16)
    assert fast.dtype == torch.bfloat16
    assert fast.info.fingerprint == exact.info.fingerprint
