"""Sequence classification: one label per text (sentiment, CoLA).

Each window gives its pooled attended features and token count; the windows of a text
combine into one token-weighted pool (or one max), classified once the text is complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from heads.kinds.base import Answer, HeadKind
from heads.modules import SequenceClassificationHead
from heads.postprocess import classification_answer
from models.windows import TextEncoding, Window

if TYPE_CHECKING:
    from heads.manifest import HeadManifest
    from heads.task_head import TaskHead

Pooled = tuple[torch.Tensor, torch.Tensor]  # (pooled features (k,), token count (1,))


class SequenceKind(HeadKind):
    name: ClassVar[str] = "sequence"
    summary: ClassVar[str] = "one label per text (softmax over the labels)"
    options: ClassVar[frozenset[str]] = frozenset({"pooling", "block"})
    per_text: ClassVar[bool] = True

    def build(self, manifest: HeadManifest) -> nn.Module:
        return SequenceClassificationHead(
            manifest.k,
            len(manifest.labels),
            manifest.num_attention_heads,
            manifest.dropout,
            manifest.pooling,
            manifest.block,
            manifest.ff_dim,
        )

    def window_outputs(
        self, module: nn.Module, features: torch.Tensor, mask: torch.Tensor, case_ids: Any
    ) -> list[Pooled]:
        assert isinstance(module, SequenceClassificationHead)
        sums, counts = module.pooled_sums(features, mask)
        sums, counts = sums.float().cpu(), counts.float().cpu()
        return [(sums[j], counts[j]) for j in range(sums.shape[0])]

    def merge(
        self, module: nn.Module, merged: Any, output: Any, window: Window, num_tokens: int
    ) -> Pooled:
        assert isinstance(module, SequenceClassificationHead)
        return output if merged is None else module.combine(merged, output)

    def answers(
        self,
        head: TaskHead,
        merged: Sequence[Any],
        texts: Sequence[str],
        encodings: Sequence[TextEncoding],
    ) -> list[Answer]:
        """One classifier call for all the texts (their pooled windows are complete)."""
        module = head.head
        assert isinstance(module, SequenceClassificationHead)
        dtype = head.layers_dtype
        sums = torch.stack([m[0] for m in merged]).to(dtype)
        counts = torch.stack([m[1] for m in merged]).to(dtype)
        with torch.inference_mode():
            logits = module.classify(sums, counts)
        probs = self.probabilities(logits.float())
        return [self.answer(head, row) for row in probs]

    def answer(self, head: TaskHead, probs: torch.Tensor) -> Answer:
        """One text's answer from its label probabilities."""
        return classification_answer(probs, head.labels)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1)
