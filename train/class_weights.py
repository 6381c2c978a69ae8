"""Per-class loss weights: ``--class-weights balanced`` or one weight per label.

MCC and F1 punish a head that leans on the majority class (CoLA is 70 % acceptable); weighting
the cross-entropy by inverse class frequency (scikit-learn's "balanced" rule) counters that
without touching the data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from train.config import ConfigError, class_weights_problem
from train.data import Example, TokenExample, label_index


def label_counts(examples: Sequence[Example], labels: Sequence[str]) -> np.ndarray:
    """How often each label occurs: one per text, or one per word for token examples."""
    counts = np.zeros(len(labels), dtype=np.int64)
    for e in examples:
        values = e.tags if isinstance(e, TokenExample) else (e.label,)
        for v in values:
            counts[label_index(labels, v)] += 1
    return counts


def class_weights(
    spec: Sequence[str] | None, examples: Sequence[Example], labels: Sequence[str]
) -> torch.Tensor | None:
    """The weight tensor for ``F.cross_entropy`` (None: unweighted).

    ``balanced`` gives label c the weight n / (C * n_c) over the training examples; a label
    that never occurs gets weight 0 (nothing to learn from it either way).
    """
    if not spec:
        return None
    if len(spec) == 1 and spec[0] == "balanced":
        counts = label_counts(examples, labels).astype(np.float64)
        present = counts > 0
        weights = np.zeros_like(counts)
        weights[present] = counts.sum() / (present.sum() * counts[present])
        return torch.tensor(weights, dtype=torch.float32)
    problem = class_weights_problem(spec, labels)
    if problem:
        raise ConfigError(problem)
    return torch.tensor([float(v) for v in spec], dtype=torch.float32)
