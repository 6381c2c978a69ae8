"""Training a multi-label head: texts pooled as for sequence heads, binary cross-entropy per
label, micro/macro F1 (scikit-learn).

Calibration: one temperature per head, fitted like the others' on the validation split. A
label's sigmoid(z / T) is the softmax of the two logits (0, z / T), so every (text, label)
pair is a two-class row for :func:`train.calibration.fit_temperature` and the ECE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from heads.task_head import TaskHead
from train.data import Example, multilabel_labels, text_targets
from train.features import CachedSplit
from train.kinds.base import CacheView
from train.kinds.sequence import SequenceTraining, text_logits
from train.metrics import multilabel_metrics

if TYPE_CHECKING:
    from train.batches import Batch


class MultiLabelTraining(SequenceTraining):
    name: ClassVar[str] = "multilabel"
    default_metric: ClassVar[str] = "f1"  # micro F1
    metrics: ClassVar[tuple[str, ...]] = ("f1", "macro_f1", "accuracy", "precision", "recall")

    def labels_of(self, examples: Sequence[Example]) -> list[str]:
        return multilabel_labels(examples)

    def check_class_weights(self) -> None:
        raise ValueError("--class-weights is for single-label kinds (sequence, token)")

    def targets(self, split: CachedSplit, texts: list[int], token_targets: torch.Tensor) -> Any:
        return torch.from_numpy(split.labels[texts].astype(np.float32))

    def loss(
        self,
        logits: torch.Tensor,
        batch: Batch,
        label_smoothing: float,
        class_weight: torch.Tensor | None,
    ) -> torch.Tensor:
        # label smoothing for independent labels: targets pulled towards 1/2 by the share
        target = batch.labels.float() * (1 - label_smoothing) + label_smoothing / 2
        return F.binary_cross_entropy_with_logits(logits.float(), target)

    def predict_cached(
        self,
        head: TaskHead,
        split: CachedSplit,
        examples: Sequence[Example],
        view: CacheView,
        constrained: bool,
    ) -> list[Any]:
        probs = head.kind.probabilities(text_logits(head, split, view.max_tokens, view.device))
        chosen = probs >= head.manifest.threshold
        return [[int(i) for i in row.nonzero().flatten().tolist()] for row in chosen]

    def from_answer(self, answer: Any, labels: Sequence[str]) -> Any:
        # a MultiLabelAnswer: the LabelScores over the threshold
        return sorted(list(labels).index(chosen.label) for chosen in answer.labels)

    def score(
        self, head: TaskHead, examples: Sequence[Example], predictions: Sequence[Any]
    ) -> dict[str, Any]:
        truth = text_targets(examples, head.labels).astype(np.int64)
        pred = np.zeros_like(truth)
        for row, chosen in enumerate(predictions):
            pred[row, list(chosen)] = 1
        return multilabel_metrics(truth, pred, head.labels)

    def calibration_data(
        self, head: TaskHead, split: CachedSplit, examples: Sequence[Example], device: Any
    ) -> tuple[torch.Tensor, list[int]]:
        z = text_logits(head, split, device=device).flatten()
        gold = text_targets(examples, head.labels).astype(np.int64).flatten()
        return torch.stack([torch.zeros_like(z), z], dim=-1), [int(y) for y in gold]
