"""What a head *kind* supplies, so that nothing outside its own file branches on its name.

A kind decides the head module built on the mixed features F_t, what one window of a text
yields, how the windows of one text merge, and the answer built from the merged value. The
engine calls these and stores the merged value opaquely; training has its own half of each
kind (``train/kinds/``: batches, loss, metric), kept there so serving never imports training.
The manifest's JSON names the kind by string (``"kind": "sequence"``), resolved with
:func:`heads.kinds.kind_for`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias

import torch
from torch import nn

from heads.answers import TaskAnswer
from models.windows import TextEncoding, Window

if TYPE_CHECKING:
    from heads.manifest import HeadManifest
    from heads.task_head import TaskHead

#: Manifest options that only some kinds accept, with their defaults: a kind lists the ones
#: it accepts in :attr:`HeadKind.options`; any other kind must leave them at the default.
KIND_OPTIONS: Mapping[str, object] = {
    "pooling": "mean",
    "block": "attention",
    "case_features": False,
    "threshold": 0.5,
}

#: What one text gets from one head (a record of heads/answers.py, written to JSON as is).
Answer: TypeAlias = TaskAnswer


class HeadKind(ABC):
    """One kind of head. Instances are stateless singletons (see ``heads/kinds/__init__.py``)."""

    #: The manifest's ``kind`` string.
    name: ClassVar[str]
    #: One line for ``sidetask train --kind`` and ``GET /tasks``.
    summary: ClassVar[str]
    #: The :data:`KIND_OPTIONS` this kind accepts.
    options: ClassVar[frozenset[str]] = frozenset()
    #: True when a text gets one answer with a score per label (``POST /predict`` serves it);
    #: False when the answer is per token (entities).
    per_text: ClassVar[bool]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<head kind {self.name}>"

    def check(self, manifest: HeadManifest) -> None:  # noqa: B027 (optional hook)
        """Raise ValueError for a manifest this kind cannot serve (beyond its options)."""

    @abstractmethod
    def build(self, manifest: HeadManifest) -> nn.Module:
        """The head module on F_t (its ``temperature`` attribute divides its logits)."""

    @abstractmethod
    def window_outputs(
        self, module: nn.Module, features: torch.Tensor, mask: torch.Tensor, case_ids: Any
    ) -> list[Any]:
        """One value per row of a micro-batch of windows, on the CPU, ready to merge.

        ``case_ids`` is the (rows, T) casing classes when the head has case features, else None.
        """

    @abstractmethod
    def merge(
        self, module: nn.Module, merged: Any, output: Any, window: Window, num_tokens: int
    ) -> Any:
        """Fold one window's output into its text's value so far (None for the first);
        ``num_tokens`` is the text's token count (specials included)."""

    @abstractmethod
    def answers(
        self,
        head: TaskHead,
        merged: Sequence[Any],
        texts: Sequence[str],
        encodings: Sequence[TextEncoding],
    ) -> list[Answer]:
        """Every asking text's answer from its merged value (one call per head and request)."""

    @abstractmethod
    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores from logits along the last axis (softmax, or sigmoid per label)."""
