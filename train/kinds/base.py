"""The training half of a head kind: its batches' targets, logits, loss, predictions, metric.

``heads/kinds/`` holds what serving needs (module, window merge, answer); this half imports
the training cache and scikit-learn, which a server never loads. Each kind here is named
like its serving half (``train_kind(head.kind)``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from heads.task_head import TaskHead
from train.data import Example
from train.features import CachedSplit

if TYPE_CHECKING:
    from train.batches import Batch


@dataclass(frozen=True)
class CacheView:
    """How the cached windows were cut, for predictions that rebuild the engine's tables."""

    tokenizer: Any
    max_length: int
    overlap: int
    max_tokens: int = 16384
    device: torch.device | str = "cpu"


class TrainKind(ABC):
    """How one kind of head trains and is scored on cached states."""

    #: The head kind's name (``heads.kinds``).
    name: ClassVar[str]
    #: True: a batch holds whole texts (all their windows, pooled as the engine does);
    #: False: single windows with a target per token.
    by_text: ClassVar[bool]
    #: The selection metric unless ``--metric`` says otherwise.
    default_metric: ClassVar[str]
    #: The metrics :meth:`score` gives that can select (``--metric``).
    metrics: ClassVar[tuple[str, ...]]
    #: Whether scores are also reported with the BIO-constrained decoding (token heads).
    constrained_decoding: ClassVar[bool] = False

    def __str__(self) -> str:
        return self.name

    @abstractmethod
    def labels_of(self, examples: Sequence[Example]) -> list[str]:
        """The label set the training examples imply (when ``--labels`` is not given)."""

    def check_class_weights(self) -> None:  # noqa: B027 (optional hook)
        """Raise ValueError when ``--class-weights`` means nothing for this kind."""

    @abstractmethod
    def targets(self, split: CachedSplit, texts: list[int], token_targets: torch.Tensor) -> Any:
        """A batch's targets: per text (``texts``) or the windows' per-token labels."""

    @abstractmethod
    def logits(self, head: TaskHead, batch: Batch) -> torch.Tensor:
        """Per text (texts, labels) or per token (windows, T, labels)."""

    @abstractmethod
    def loss(
        self,
        logits: torch.Tensor,
        batch: Batch,
        label_smoothing: float,
        class_weight: torch.Tensor | None,
    ) -> torch.Tensor:
        """The batch's loss (before regularisers and file weights)."""

    @abstractmethod
    def predict_cached(
        self,
        head: TaskHead,
        split: CachedSplit,
        examples: Sequence[Example],
        view: CacheView,
        constrained: bool,
    ) -> list[Any]:
        """What the engine would answer, from cached states, as :meth:`score` takes it."""

    @abstractmethod
    def from_answer(self, answer: Any, labels: Sequence[str]) -> Any:
        """A prediction (as :meth:`score` takes it) from the engine's answer for one text."""

    @abstractmethod
    def score(
        self, head: TaskHead, examples: Sequence[Example], predictions: Sequence[Any]
    ) -> dict[str, Any]:
        """Metrics of the predictions against the examples (the selection metric among them)."""

    @abstractmethod
    def calibration_data(
        self, head: TaskHead, split: CachedSplit, examples: Sequence[Example], device: Any
    ) -> tuple[torch.Tensor, list[int]]:
        """(logits (n, classes), gold class per row) that the temperature is fitted on and
        calibration is measured with (softmax over the classes of each row)."""
