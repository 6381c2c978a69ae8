"""What a request becomes before the backbone runs: tokenised texts cut into windows.

The scheduler interleaves windows of many requests in one micro-batch, so every window
carries its own text and request: a micro-batch's outputs are gathered into the right
:class:`TextState` whatever else ran beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import orjson

from heads.answers import ClassAnswer, Embedding, MainOutput, TextAnswers
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


@dataclass(frozen=True)
class Usage:
    tokens: int
    layers_run: int


@dataclass(frozen=True)
class AnalyzePayload:
    """The body of ``POST /analyze`` (``server.schemas.AnalyzeResponse`` documents it)."""

    results: list[TextAnswers]
    backbone: str
    usage: Usage


@dataclass
class AnalyzeResult:
    results: list[TextAnswers]
    tokens: int
    layers_run: int

    def payload(self, backbone: str) -> AnalyzePayload:
        """The answer of ``POST /analyze`` (and ``sidetask analyze --json``): built here
        once, so the route and the command cannot drift apart."""
        return AnalyzePayload(self.results, backbone, Usage(self.tokens, self.layers_run))

    def payload_json(self, backbone: str) -> bytes:
        """:meth:`payload` as compact JSON (orjson writes the answer dataclasses natively:
        their fields in declaration order, NaN as null)."""
        return orjson.dumps(self.payload(backbone))

    def class_answers(self, task: str) -> list[ClassAnswer]:
        """Every text's answer of the sequence head ``task``."""
        out = []
        for answer in self.results:
            value = answer[task]
            if not isinstance(value, ClassAnswer):
                raise TypeError(f"{task!r} answered {type(value).__name__}, not a class answer")
            out.append(value)
        return out

    def embeddings(self, task: str) -> list[Embedding]:
        """Every text's embedding (``task``: the main task of an encoder)."""
        out = []
        for answer in self.results:
            value = answer[task]
            if not isinstance(value, list) or not all(isinstance(x, float) for x in value[:1]):
                raise TypeError(f"{task!r} answered {type(value).__name__}, not an embedding")
            out.append(cast(Embedding, value))
        return out


@dataclass(eq=False)
class TextState:
    """Per-text partial answers gathered across micro-batches."""

    tasks: frozenset[str]
    main: bool
    encoding: TextEncoding
    text: str  # the original text: entity spans and casing classes are read from it
    # per head, its windows merged so far: the head kind's own value (heads/kinds/)
    outputs: dict[str, object] = field(default_factory=dict)
    main_output: MainOutput | None = None


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
