"""What a request becomes before the backbone runs: tokenised texts cut into windows.

The scheduler interleaves windows of many requests in one micro-batch, so every window
carries its own text and request: a micro-batch's outputs are gathered into the right
:class:`TextState` whatever else ran beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from heads.registry import HeadSet
from models.windows import TextEncoding, Window


class UnknownTaskError(ValueError):
    """A request named a task this server does not have."""

    def __init__(self, unknown: Sequence[str], available: Sequence[str]) -> None:
        self.unknown = list(unknown)
        self.available = list(available)
        super().__init__(
            f"unknown task(s) {', '.join(map(repr, unknown))}; available: {', '.join(available)}"
        )


@dataclass(frozen=True)
class AnalyzeRequest:
    texts: list[str]
    tasks: list[str] | None = None


@dataclass
class AnalyzeResult:
    results: list[dict[str, Any]]
    tokens: int
    layers_run: int

    def payload(self, backbone: str) -> dict[str, Any]:
        """The JSON answer of ``POST /analyze`` (and ``sidetask analyze --json``): built here
        once, so the route and the command cannot drift apart."""
        return {
            "results": self.results,
            "backbone": backbone,
            "usage": {"tokens": self.tokens, "layers_run": self.layers_run},
        }


@dataclass(eq=False)
class TextState:
    """Per-text partial answers gathered across micro-batches."""

    tasks: frozenset[str]
    main: bool
    encoding: TextEncoding
    text: str  # the original text: entity spans and casing classes are read from it
    pooled: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    token_probs: dict[str, torch.Tensor] = field(default_factory=dict)
    main_output: Any = None


@dataclass(eq=False)
class PreparedRequest:
    """A request tokenised against one head set; its windows wait to be run.

    The head set is the one current when the request was prepared: a hot reload changes the
    heads of later requests, never half of one request's windows.
    """

    request: AnalyzeRequest
    heads: HeadSet
    texts: list[TextState]
    windows: list[WindowItem] = field(default_factory=list)
    layers_run: int = 0

    @property
    def tokens(self) -> int:
        """Tokens the backbone runs for this request (every window, specials included)."""
        return sum(item.window.length for item in self.windows)


@dataclass(frozen=True, eq=False)
class WindowItem:
    """One window of one text of one request: the unit the scheduler batches."""

    prepared: PreparedRequest
    state: TextState
    window: Window

    @property
    def length(self) -> int:
        return self.window.length
