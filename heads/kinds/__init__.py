"""Head kinds by name: ``kind_for("sequence")``. A new kind is one module here (a
:class:`~heads.kinds.base.HeadKind`), its line in :data:`KINDS`, and its training half in
``train/kinds/``."""

from __future__ import annotations

from heads.kinds.base import KIND_OPTIONS, HeadKind
from heads.kinds.multilabel import MultiLabelKind
from heads.kinds.sequence import SequenceKind
from heads.kinds.token import TokenKind

__all__ = ["KINDS", "KIND_OPTIONS", "HeadKind", "kind_for", "kinds_accepting"]

KINDS: dict[str, HeadKind] = {k.name: k for k in (SequenceKind(), TokenKind(), MultiLabelKind())}


def kind_for(name: str) -> HeadKind:
    """The kind a manifest's ``kind`` string names; ValueError listing the known ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown head kind {name!r}; known: {', '.join(KINDS)}") from None


def kinds_accepting(option: str) -> list[str]:
    """Names of the kinds whose manifests may set ``option`` (one of :data:`KIND_OPTIONS`)."""
    return [name for name, kind in KINDS.items() if option in kind.options]
