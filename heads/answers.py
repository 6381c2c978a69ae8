"""What a task answers for one text: small frozen records, serialised as they are.

The engine hands these to the server and the command line unchanged; orjson writes a
dataclass's fields in declaration order, so the field order here *is* the JSON key order of
``POST /analyze`` (``server/schemas.py`` documents the same shapes for OpenAPI, and
``tests/server/test_analyze_schema.py`` checks the raw bodies against that schema).

No ``slots=True``: orjson reads a plain dataclass's ``__dict__``, about as fast as a dict,
but a slotted one field by field, several times slower (the JSON is written on the event
loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True)
class ClassAnswer:
    """A sequence head's answer: the most likely label, its probability, every label's."""

    label: str
    score: float
    scores: dict[str, float]


@dataclass(frozen=True)
class Entity:
    """A span of the original text (``text == original[start:end]``, Python str offsets)."""

    text: str
    label: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


@dataclass(frozen=True)
class MultiLabelAnswer:
    """A multi-label head's answer: the labels whose score reaches ``threshold`` (most likely
    first), and every label's independent score so a client can apply its own threshold."""

    labels: list[LabelScore]
    scores: dict[str, float]
    threshold: float


Embedding: TypeAlias = list[float]
"""The main task of an encoder: the sentence embedding."""

MainOutput: TypeAlias = Embedding | str
"""The backbone's own answer: an embedding (encoders) or the generated text (BART)."""

TaskAnswer: TypeAlias = ClassAnswer | MultiLabelAnswer | list[Entity] | MainOutput
"""One task's answer for one text; a new head kind adds its answer type here."""

TextAnswers: TypeAlias = dict[str, TaskAnswer]
"""Every requested task's answer for one text, keyed by task name (the JSON key order)."""
