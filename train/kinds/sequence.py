"""Training a sequence head: texts pooled over their windows, cross-entropy, accuracy/MCC."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from heads.modules import SequenceClassificationHead
from heads.task_head import TaskHead
from train.batches import load_batch, plan, windows_by_text
from train.data import Example, TextExample, label_index
from train.features import CachedSplit
from train.kinds.base import CacheView, TrainKind
from train.metrics import classification_metrics

if TYPE_CHECKING:
    from train.batches import Batch


def pooled_logits(head: TaskHead, batch: Batch) -> torch.Tensor:
    """(texts, labels): each text's windows pooled together, as the engine merges them."""
    module = head.head
    assert isinstance(module, SequenceClassificationHead)
    features = head.mixer(batch.activated)
    sums, counts = module.pooled_sums(features, batch.mask)
    total, count = module.combine_windows(sums, counts, batch.group, batch.num_texts)
    return module.classify(total, count)


@torch.no_grad()
def text_logits(
    head: TaskHead, split: CachedSplit, max_tokens: int = 16384, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(texts, labels) logits of a per-text head from cached states (temperature applied)."""
    head.eval()
    groups = windows_by_text(split)
    out = torch.zeros(split.num_examples, len(head.labels))
    for units in plan(split, head.kind.name, max_tokens, shuffle=False):
        batch = load_batch(split, head.kind.name, units, groups).to(torch.device(device))
        out[units] = pooled_logits(head, batch).float().cpu()
    return out


class SequenceTraining(TrainKind):
    name: ClassVar[str] = "sequence"
    by_text: ClassVar[bool] = True
    default_metric: ClassVar[str] = "accuracy"
    metrics: ClassVar[tuple[str, ...]] = ("accuracy", "mcc")

    def labels_of(self, examples: Sequence[Example]) -> list[str]:
        values = {e.label for e in examples if isinstance(e, TextExample)}
        return sorted(values, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))

    def targets(self, split: CachedSplit, texts: list[int], token_targets: torch.Tensor) -> Any:
        return torch.from_numpy(split.labels[texts].astype(np.int64))

    def logits(self, head: TaskHead, batch: Batch) -> torch.Tensor:
        return pooled_logits(head, batch)

    def loss(
        self,
        logits: torch.Tensor,
        batch: Batch,
        label_smoothing: float,
        class_weight: torch.Tensor | None,
    ) -> torch.Tensor:
        return F.cross_entropy(
            logits.float(), batch.labels, weight=class_weight, label_smoothing=label_smoothing
        )

    def predict_cached(
        self,
        head: TaskHead,
        split: CachedSplit,
        examples: Sequence[Example],
        view: CacheView,
        constrained: bool,
    ) -> list[Any]:
        logits = text_logits(head, split, view.max_tokens, view.device)
        return [int(i) for i in logits.argmax(-1).tolist()]

    def from_answer(self, answer: Any, labels: Sequence[str]) -> Any:
        return list(labels).index(answer.label)  # a ClassAnswer

    def score(
        self, head: TaskHead, examples: Sequence[Example], predictions: Sequence[Any]
    ) -> dict[str, Any]:
        truth = [label_index(head.labels, e.label) for e in examples if isinstance(e, TextExample)]
        return classification_metrics(truth, list(predictions), head.labels)

    def calibration_data(
        self, head: TaskHead, split: CachedSplit, examples: Sequence[Example], device: Any
    ) -> tuple[torch.Tensor, list[int]]:
        gold = [label_index(head.labels, e.label) for e in examples if isinstance(e, TextExample)]
        return text_logits(head, split, device=device), gold
