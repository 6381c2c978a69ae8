"""Shared fixtures: tiny random RoBERTa and BART saved as local checkpoints, the real MiniLM."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Many tests compare answers across batchings to 1e-4: pin float32 heads and accumulator
# whatever the environment or the CPU; bfloat16 has its own tests (test_head_dtype.py).
os.environ["SIDETASK_HEAD_DTYPE"] = "float32"
os.environ["SIDETASK_ACCUMULATOR_DTYPE"] = "float32"

import pytest
import torch

# Triton reads TRITON_INTERPRET when triton.language is first imported, and some test modules
# import it (through torch.compile or the kernel) while being collected. Without CUDA nothing
# compiles Triton kernels, so the interpreter is switched on here, before any of them.
if "triton" not in sys.modules and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from heads.manifest import HeadManifest
from heads.task_head import TaskHead, fingerprint_of
from models.backbone import Backbone, BackboneInfo

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY_BPE = FIXTURES / "tiny-bpe"


def _tokenizer(cls_name: str):  # type: ignore[no-untyped-def]
    """The shipped tiny byte-level BPE, wrapped as the model's own tokenizer class."""
    import json

    import transformers

    cls = getattr(transformers, cls_name)
    vocab = json.loads((TINY_BPE / "vocab.json").read_text())
    merges = [
        tuple(line.split(" "))
        for line in (TINY_BPE / "merges.txt").read_text().splitlines()[1:]
        if line.strip()
    ]
    return cls(vocab=vocab, merges=merges, model_max_length=64)


def _save_tiny(kind: str, folder: Path) -> Path:
    from transformers import BartConfig, BartForConditionalGeneration, RobertaConfig, RobertaModel

    torch.manual_seed(0)
    if kind == "roberta":
        tok = _tokenizer("RobertaTokenizerFast")
        config = RobertaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            intermediate_size=96,
            max_position_embeddings=66,
            pad_token_id=tok.pad_token_id,
        )
        model = RobertaModel(config)
    else:
        tok = _tokenizer("BartTokenizerFast")
        config = BartConfig(
            vocab_size=len(tok),
            d_model=64,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=96,
            decoder_ffn_dim=96,
            max_position_embeddings=64,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            decoder_start_token_id=tok.eos_token_id,
            forced_bos_token_id=None,
            forced_eos_token_id=None,
        )
        model = BartForConditionalGeneration(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: tiny models on a shared 2-core box run far faster without them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_roberta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_tiny("roberta", tmp_path_factory.mktemp("tiny-roberta"))


@pytest.fixture(scope="session")
def tiny_bart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save_tiny("bart", tmp_path_factory.mktemp("tiny-bart"))


@pytest.fixture(scope="session")
def tiny_roberta(tiny_roberta_dir: Path) -> Backbone:
    return Backbone.load(tiny_roberta_dir)


@pytest.fixture(scope="session")
def tiny_bart(tiny_bart_dir: Path) -> Backbone:
    return Backbone.load(tiny_bart_dir)


@pytest.fixture(scope="session")
def minilm() -> Backbone:
    from models.defaults import default_backbone_path

    return Backbone.load(default_backbone_path())


def random_head(
    info: BackboneInfo,
    name: str,
    kind: str = "sequence",
    k: int = 16,
    labels: list[str] | None = None,
    seed: int = 0,
    cutoff: float = 0.0,
    positions: bool = False,
    layer_logits: list[float] | None = None,
) -> TaskHead:
    """A head with random (untrained) weights, for tests only."""
    torch.manual_seed(seed)
    if labels is None:
        labels = ["negative", "positive"] if kind == "sequence" else ["O", "B-PER", "I-PER"]
    logits = layer_logits or torch.randn(info.num_states).mul(0.05).tolist()
    manifest = HeadManifest(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        labels=labels,
        k=k,
        alpha=8.0,
        cutoff=cutoff,
        layer_logits=logits,
        positions=positions,
        max_positions=info.max_length + 2,
        num_attention_heads=2,
        ff_dim=64,
        backbone=fingerprint_of(info),
    )
    return TaskHead(manifest).eval()
