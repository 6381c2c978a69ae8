"""Training halves of the head kinds by name: ``train_kind("token")`` (see ``heads/kinds``)."""

from __future__ import annotations

from heads.kinds import HeadKind
from train.kinds.base import CacheView, TrainKind
from train.kinds.multilabel import MultiLabelTraining
from train.kinds.sequence import SequenceTraining
from train.kinds.token import TokenTraining

__all__ = ["TRAIN_KINDS", "CacheView", "TrainKind", "train_kind"]

TRAIN_KINDS: dict[str, TrainKind] = {
    k.name: k for k in (SequenceTraining(), TokenTraining(), MultiLabelTraining())
}


def train_kind(kind: str | HeadKind | TrainKind) -> TrainKind:
    """The training half of a kind, by name or by its serving half."""
    name = kind if isinstance(kind, str) else kind.name
    try:
        return TRAIN_KINDS[name]
    except KeyError:
        raise ValueError(f"unknown head kind {name!r}; known: {', '.join(TRAIN_KINDS)}") from None
