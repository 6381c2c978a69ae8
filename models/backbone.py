"""Frozen Hugging Face backbone with layer taps.

Each hidden state Z_0 (the input of the first layer) .. Z_L (the output of the last
layer) is handed to a consumer while the model runs, through forward hooks on the layer
modules. Nothing asks the model for ``output_hidden_states`` and nothing keeps the states,
so memory stays at one layer's activations. When no one needs the later layers, a hook
raises :class:`_EarlyExit` after the last needed layer and the rest of the model never runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import torch
from torch import nn

from models.embedding import mean_pool_normalize
from models.unpadded import fuse_qkv, supports_unpadded, unpadded_encode

LayerConsumer = Callable[[int, torch.Tensor], None]


class BackboneError(RuntimeError):
    """The backbone cannot be loaded or does not have the expected structure."""


class _EarlyExit(Exception):
    """Raised inside a layer hook to stop the forward pass after the last needed layer."""


@dataclass(frozen=True)
class BackboneInfo:
    """What a head needs to know to check it was trained on this backbone."""

    name: str
    model_type: str
    hidden_size: int
    num_layers: int  # L: hidden states Z_0..Z_L, so L + 1 taps
    max_length: int  # tokens per window, special tokens included
    is_encoder_decoder: bool
    fingerprint: str

    @property
    def num_states(self) -> int:
        return self.num_layers + 1

    @property
    def main_task(self) -> str:
        return "generate" if self.is_encoder_decoder else "embedding"


class GenerateOptions(TypedDict, total=False):
    """The ``generate()`` arguments the engine sets for the BART main task."""

    max_length: int
    num_beams: int


@dataclass(frozen=True, slots=True)
class ForwardResult:
    """What one backbone pass produced besides the taps (tensors on the backbone's device).

    ``last_hidden`` (batch, tokens, hidden): the encoder's last layer, None after an early
    exit; ``embedding`` (batch, hidden): the encoder main task, L2-normalised, when asked
    for; ``generated`` (batch, generated tokens): BART's token ids, when asked for.
    """

    layers_run: int
    last_hidden: torch.Tensor | None = None
    embedding: torch.Tensor | None = None
    generated: torch.Tensor | None = None


def _encoder_layers(model: Any) -> nn.ModuleList:
    """The encoder's layer list for BERT-family encoders and BART-style seq2seq models."""
    candidates = [
        ("encoder", "layer"),  # BERT, RoBERTa, XLM-R, ELECTRA
        ("encoder", "layers"),  # BART encoder (via get_encoder)
        ("transformer", "layer"),  # DistilBERT
        ("layer",),  # an encoder module itself
        ("layers",),
    ]
    roots: list[Any] = [model]
    if getattr(model.config, "is_encoder_decoder", False):
        roots.insert(0, model.get_encoder())
    for root in roots:
        for path in candidates:
            obj: Any = root
            for attr in path:
                obj = getattr(obj, attr, None)
                if obj is None:
                    break
            if isinstance(obj, nn.ModuleList) and len(obj) > 0:
                return obj
    raise BackboneError(f"cannot find the encoder layers of {type(model).__name__}")


def embedding_fingerprint(model: Any) -> str:
    """A short hash of the input embedding matrix: cheap, and different for every checkpoint."""
    weight = model.get_input_embeddings().weight.detach().to("cpu", torch.float32)
    digest = hashlib.sha256(weight.contiguous().numpy().tobytes()).hexdigest()
    return digest[:16]


def _window_length(path: Path | None, config: Any, tokenizer: Any) -> int:
    """Tokens per window: sentence-transformers' max_seq_length when present, else the model's."""
    if path is not None and (path / "sentence_bert_config.json").is_file():
        st = json.loads((path / "sentence_bert_config.json").read_text())
        if "max_seq_length" in st:
            return int(st["max_seq_length"])
    limits = [int(getattr(config, "max_position_embeddings", 512))]
    if config.model_type in {"roberta", "xlm-roberta", "camembert"}:
        limits[0] -= 2  # positions start after the padding index
    model_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(model_max, int) and 0 < model_max < 100_000:
        limits.append(model_max)
    return min(limits)


class Backbone:
    """A frozen transformer: tokenizer, model and layer taps.

    The model is in eval mode with gradients off; every call runs under inference mode.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        name: str,
        max_length: int | None = None,
        source_dir: Path | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.model: Any = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.layers = _encoder_layers(model)
        self.compiled = False  # compile_layers() sets it
        self.unpadded = False  # use_unpadded() sets it
        config: Any = model.config
        self.is_encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
        window = max_length or _window_length(source_dir, config, tokenizer)
        self.info = BackboneInfo(
            name=name,
            model_type=str(config.model_type),
            hidden_size=int(
                config.hidden_size if hasattr(config, "hidden_size") else config.d_model
            ),
            num_layers=len(self.layers),
            max_length=int(window),
            is_encoder_decoder=self.is_encoder_decoder,
            fingerprint=fingerprint or embedding_fingerprint(model),
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @classmethod
    def load(
        cls,
        name_or_path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_length: int | None = None,
        name: str | None = None,
    ) -> Backbone:
        """Load a local checkpoint folder (or a hub name where a hub is reachable)."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        path = Path(name_or_path)
        source = str(path) if path.exists() else str(name_or_path)
        try:
            config = AutoConfig.from_pretrained(source)
            tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
            model_cls: Any = AutoModel
            if getattr(config, "is_encoder_decoder", False):
                from transformers import AutoModelForSeq2SeqLM

                model_cls = AutoModelForSeq2SeqLM
            # safetensors only: a pickled checkpoint (pytorch_model.bin) can run code on load.
            # Loaded as float32 first: the fingerprint heads are matched against must not
            # depend on the dtype the backbone serves in.
            model = model_cls.from_pretrained(source, dtype=torch.float32, use_safetensors=True)
        except (OSError, ValueError) as exc:
            raise BackboneError(f"cannot load backbone from {name_or_path!r}: {exc}") from exc
        if not getattr(tokenizer, "is_fast", False):
            raise BackboneError(f"{name_or_path!r} has no fast tokenizer; offsets need one")
        fingerprint = embedding_fingerprint(model)
        model.to(device=device, dtype=dtype)
        return cls(
            model,
            tokenizer,
            name=name or (path.name if path.exists() else str(name_or_path)),
            max_length=max_length,
            source_dir=path if path.exists() else None,
            fingerprint=fingerprint,
        )

    def compile_layers(self) -> None:
        """torch.compile (Inductor) each layer's ``forward``, dynamic in batch and length.

        Per layer, not the whole model: the taps are hooks around each layer's call
        (``Module.__call__`` runs them eagerly around the compiled forward), so the
        accumulator and early exit work unchanged. Dynamic shapes give one graph per layer
        for every batch x length (plus a static one for the first shapes seen), so padded
        lengths never cause a recompile per length; :meth:`compile_warmup` compiles them
        before the first request.
        """
        for layer in self.layers:
            layer.forward = torch.compile(layer.forward, dynamic=True)
        self.compiled = True

    def compile_warmup(self, lengths: Sequence[int] = (16, 48)) -> float:
        """Run every layer at a few batch x length shapes so compilation happens now, not
        on a user's request; returns the seconds it took."""
        started = time.perf_counter()
        special = self.tokenizer.cls_token_id or self.tokenizer.bos_token_id or 0
        for batch, length in ((1, lengths[0]), *((2, n) for n in lengths)):
            n = min(length, self.info.max_length)
            ids = torch.full((batch, n), special, dtype=torch.long, device=self.device)
            mask = torch.ones_like(ids)
            mask[-1, n // 2 :] = 0  # padding, as in a real micro-batch
            self.forward(ids, mask, main=not self.is_encoder_decoder)
        return time.perf_counter() - started

    @contextmanager
    def taps(self, consumer: LayerConsumer, last_layer: int | None) -> Iterator[None]:
        """Hand Z_0..Z_L to ``consumer`` during the next forward; stop after ``last_layer``."""
        handles = []

        def pre_hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            hidden = args[0] if args else kwargs["hidden_states"]
            consumer(0, hidden)
            if last_layer == 0:
                raise _EarlyExit

        def make_hook(index: int) -> Callable[..., None]:
            def hook(module: nn.Module, args: Any, output: Any) -> None:
                hidden = output[0] if isinstance(output, tuple) else output
                consumer(index, hidden)
                if last_layer is not None and index >= last_layer:
                    raise _EarlyExit

            return hook

        handles.append(self.layers[0].register_forward_pre_hook(pre_hook, with_kwargs=True))
        for i, layer in enumerate(self.layers):
            handles.append(layer.register_forward_hook(make_hook(i + 1)))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        consumer: LayerConsumer | None = None,
        last_layer: int | None = None,
        main: bool = True,
        generate_kwargs: GenerateOptions | None = None,
    ) -> ForwardResult:
        """One pass: taps feed ``consumer``; the main task is computed when ``main``.

        ``last_layer`` is ignored when ``main`` is set: the main task needs every layer.
        For BART the side heads tap the encoder pass that generation itself uses.
        """
        stop = None if main else last_layer
        if self.unpadded and not self.compiled:
            return self._forward_unpadded(input_ids, attention_mask, consumer, stop, main)
        counter = _LayerCounter(consumer)
        with torch.inference_mode(), self.taps(counter, stop):
            try:
                if self.is_encoder_decoder:
                    return self._forward_seq2seq(
                        input_ids, attention_mask, counter, main, generate_kwargs or {}
                    )
                out = self.model(input_ids=input_ids, attention_mask=attention_mask)
            except _EarlyExit:
                return ForwardResult(layers_run=counter.layers_run)
        last = out.last_hidden_state
        embedding = mean_pool_normalize(last, attention_mask) if main else None
        return ForwardResult(layers_run=counter.layers_run, last_hidden=last, embedding=embedding)

    def use_unpadded(self, on: bool = True) -> bool:
        """Run encoder passes without pad tokens (models/unpadded.py) when ``on`` and the
        layers allow it (BERT family); returns whether they will. Compiled layers keep the
        padded pass."""
        self.unpadded = on and supports_unpadded(self.model, self.layers)
        if self.unpadded:
            fuse_qkv(self.layers)
        return self.unpadded

    def _forward_unpadded(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        consumer: LayerConsumer | None,
        stop: int | None,
        main: bool,
    ) -> ForwardResult:
        with torch.inference_mode():
            layers_run, last = unpadded_encode(
                self.model, self.layers, input_ids, attention_mask, consumer, stop
            )
            if last is None:
                return ForwardResult(layers_run=layers_run)
            embedding = mean_pool_normalize(last, attention_mask) if main else None
        return ForwardResult(layers_run=layers_run, last_hidden=last, embedding=embedding)

    def _forward_seq2seq(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        counter: _LayerCounter,
        main: bool,
        generate_kwargs: GenerateOptions,
    ) -> ForwardResult:
        encoder = self.model.get_encoder()
        enc = encoder(input_ids=input_ids, attention_mask=attention_mask)
        layers_run = counter.layers_run
        if not main:
            return ForwardResult(layers_run=layers_run, last_hidden=enc.last_hidden_state)
        # Generation reuses this encoder output: the encoder runs once in total.
        generated = self.model.generate(
            encoder_outputs=enc,
            attention_mask=attention_mask,
            **generate_kwargs,
        )
        return ForwardResult(
            layers_run=layers_run, last_hidden=enc.last_hidden_state, generated=generated
        )


class _LayerCounter:
    """Counts the taps that fired, so callers learn how many layers actually ran."""

    def __init__(self, consumer: LayerConsumer | None) -> None:
        self.consumer = consumer
        self.layers_run = 0

    def __call__(self, index: int, hidden: torch.Tensor) -> None:
        self.layers_run = max(self.layers_run, index)
        if self.consumer is not None:
            self.consumer(index, hidden)
