"""Token classification: a BIO tag per word, answered as entities with character offsets (NER).

Each window gives its tokens' tag probabilities; a text's table takes every token from the
window that owns it (``Window.write_owned``), then words are decoded BIO-consistently
(Viterbi over the words' probabilities: +2.8 to +5.4 entity F1 over each word's argmax on
every case view, docs/quality.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from heads.kinds.base import Answer, HeadKind
from heads.modules import TokenClassificationHead
from heads.postprocess import TokenTable, token_entities_many
from models.windows import TextEncoding, Window

if TYPE_CHECKING:
    from heads.manifest import HeadManifest
    from heads.task_head import TaskHead


class TokenKind(HeadKind):
    name: ClassVar[str] = "token"
    summary: ClassVar[str] = "a tag per word, answered as entities (NER)"
    options: ClassVar[frozenset[str]] = frozenset({"case_features"})
    per_text: ClassVar[bool] = False

    def build(self, manifest: HeadManifest) -> nn.Module:
        return TokenClassificationHead(
            manifest.k,
            len(manifest.labels),
            manifest.num_attention_heads,
            manifest.ff_dim,
            manifest.dropout,
            manifest.case_features,
        )

    def window_outputs(
        self, module: nn.Module, features: torch.Tensor, mask: torch.Tensor, case_ids: Any
    ) -> list[torch.Tensor]:
        logits = module(features, mask, case_ids)
        probs = self.probabilities(logits.float()).cpu()
        return list(probs.unbind(0))

    def merge(
        self, module: nn.Module, merged: Any, output: Any, window: Window, num_tokens: int
    ) -> torch.Tensor:
        table = merged if merged is not None else torch.zeros(num_tokens, output.shape[-1])
        window.write_owned(table, output)
        return table

    def answers(
        self,
        head: TaskHead,
        merged: Sequence[Any],
        texts: Sequence[str],
        encodings: Sequence[TextEncoding],
    ) -> list[Answer]:
        empty = torch.zeros(0, len(head.labels))
        tables = [
            TokenTable(text, enc.offsets, enc.word_ids, empty if m is None else m)
            for m, text, enc in zip(merged, texts, encodings, strict=True)
        ]
        return list(token_entities_many(tables, head.labels))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1)
