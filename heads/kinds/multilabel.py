"""Multi-label classification: any number of labels per text (topics, tags), sigmoid per label.

The module and the window merge are the sequence kind's; each label's score is an independent
sigmoid, and the answer lists the labels whose score reaches the manifest's ``threshold``
(default 0.5) with every label's score beside them, so a client can apply its own threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch

from heads.answers import LabelScore, MultiLabelAnswer
from heads.kinds.base import Answer
from heads.kinds.sequence import SequenceKind

if TYPE_CHECKING:
    from heads.task_head import TaskHead


def multilabel_answer(
    probs: torch.Tensor, labels: Sequence[str], threshold: float
) -> MultiLabelAnswer:
    """The labels at or over ``threshold`` (most likely first) and every label's score."""
    values = [float(p) for p in probs.tolist()]
    chosen = sorted(
        (i for i, v in enumerate(values) if v >= threshold), key=lambda i: (-values[i], i)
    )
    return MultiLabelAnswer(
        [LabelScore(labels[i], values[i]) for i in chosen],
        dict(zip(labels, values, strict=True)),
        threshold,
    )


class MultiLabelKind(SequenceKind):
    name: ClassVar[str] = "multilabel"
    summary: ClassVar[str] = "any number of labels per text (a sigmoid per label, a threshold)"
    options: ClassVar[frozenset[str]] = frozenset({"pooling", "block", "threshold"})
    per_text: ClassVar[bool] = True

    def answer(self, head: TaskHead, probs: torch.Tensor) -> Answer:
        return multilabel_answer(probs, head.labels, head.manifest.threshold)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)
