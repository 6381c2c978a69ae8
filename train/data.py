"""Readers for training and evaluation data.

Formats: CoNLL columns (token ... tag, blank line between sentences), CoLA's raw TSV
(4 columns, no header), TSV with a header holding a text column (``sentence`` or ``text``)
and ``label`` (SST-2, IMDB; ``.gz`` is read transparently), CSV with ``text,label`` or
``tokens,tags`` columns, and JSONL objects ``{"text", "label"}`` / ``{"tokens", "tags"}``.
Multi-label data (``--kind multilabel``) has a ``labels`` column or field instead of
``label``: comma-separated label names in TSV and CSV (empty: none of them), a list (or such
a string) in JSONL.
Every malformed row raises :class:`DataError` naming the file and the line number, so a
user with a broken file learns where, not just that, it is broken.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Kind = Literal["sequence", "token", "multilabel"]
FORMATS = ("auto", "conll", "cola", "tsv", "csv", "jsonl")


class DataError(ValueError):
    """A data file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class TextExample:
    """One text with its class label (as written in the file)."""

    text: str
    label: str


@dataclass(frozen=True)
class TokenExample:
    """One pre-tokenised sentence with one BIO tag per token."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]

    @property
    def text(self) -> str:
        """The text the engine sees: the tokens joined by single spaces."""
        return " ".join(self.tokens)


@dataclass(frozen=True)
class MultiLabelExample:
    """One text with any number of labels (possibly none), in file order."""

    text: str
    labels: tuple[str, ...]

    @property
    def label(self) -> str:
        """The labels as a file writes them (comma separated): identifies the example."""
        return ",".join(self.labels)


Example = TextExample | TokenExample | MultiLabelExample


def split_labels(value: str) -> tuple[str, ...]:
    """``"sports, politics"`` -> ``("sports", "politics")``; empty -> no label."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def detect_format(path: str | Path) -> str:
    """Guess the format from the name and the first line."""
    path = Path(path)
    name = path.name.removesuffix(".gz")
    if name.endswith(".jsonl") or name.endswith(".json"):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".tsv"):
        with _open_text(path) as fh:
            first = fh.readline().rstrip("\n").split("\t")
        header = {c.strip().lower() for c in first}
        return "tsv" if header & {"label", "labels"} else "cola"
    return "conll"


def _err(path: Path, line: int, message: str) -> DataError:
    return DataError(f"{path}:{line}: {message}")


def read_conll(path: Path) -> Iterator[Example]:
    """Token in the first column, tag in the last; blank lines end sentences."""
    tokens: list[str] = []
    tags: list[str] = []
    with _open_text(path) as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line.strip():
                if tokens:
                    yield TokenExample(tuple(tokens), tuple(tags))
                    tokens, tags = [], []
                continue
            if line.startswith("-DOCSTART-"):
                continue
            cols = line.split()
            if len(cols) < 2:
                raise _err(path, number, f"expected 'token ... tag' columns, got {line!r}")
            tag = cols[-1]
            _check_tag(path, number, tag)
            tokens.append(cols[0])
            tags.append(tag)
    if tokens:
        yield TokenExample(tuple(tokens), tuple(tags))


def _check_tag(path: Path, number: int, tag: str) -> None:
    if tag == "O":
        return
    prefix, sep, kind = tag.partition("-")
    if prefix not in {"B", "I"} or not sep or not kind:
        raise _err(path, number, f"tag {tag!r} is not O, B-TYPE or I-TYPE")


def read_cola(path: Path) -> Iterator[Example]:
    """CoLA raw: source, label, author's mark, sentence (tab separated, no header)."""
    with _open_text(path) as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.rstrip("\n").rstrip("\r")
            if not line:
                continue
            cols = line.split("\t")
            if len(cols) != 4:
                raise _err(path, number, f"expected 4 tab-separated columns, got {len(cols)}")
            if not cols[3].strip():
                raise _err(path, number, "empty sentence")
            yield TextExample(cols[3], cols[1].strip())


def read_tsv(path: Path) -> Iterator[Example]:
    """TSV with a header: a ``sentence`` or ``text`` column and a ``label`` column, or a
    ``labels`` column of comma-separated labels (multi-label; empty: none)."""
    with _open_text(path) as fh:
        header = [c.strip().lower() for c in fh.readline().rstrip("\n").split("\t")]
        text_col = _text_column(path, header)
        multi = "label" not in header
        label_col = header.index("labels" if multi else "label")
        for number, raw in enumerate(fh, 2):
            line = raw.rstrip("\n").rstrip("\r")
            if not line:
                continue
            cols = line.split("\t")
            if len(cols) != len(header):
                raise _err(path, number, f"expected {len(header)} columns, got {len(cols)}")
            text, label = cols[text_col].strip(), cols[label_col].strip()
            if multi:
                if not text:
                    raise _err(path, number, "empty text")
                yield MultiLabelExample(text, split_labels(label))
                continue
            if not text or not label:
                raise _err(path, number, "empty text or label")
            yield TextExample(text, label)


def _text_column(path: Path, header: Sequence[str]) -> int:
    for name in ("text", "sentence"):
        if name in header:
            if "label" not in header and "labels" not in header:
                break
            return list(header).index(name)
    raise _err(path, 1, f"header must name a text/sentence column and a label(s) column: {header}")


def read_csv(path: Path) -> Iterator[Example]:
    """CSV with a header: ``text,label`` or ``tokens,tags`` (space-separated lists)."""
    with _open_text(path) as fh:
        reader = csv.reader(fh)
        header = [c.strip().lower() for c in next(reader, [])]
        for row in reader:
            number = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                raise _err(path, number, f"expected {len(header)} columns, got {len(row)}")
            yield _from_record(path, number, dict(zip(header, row, strict=True)))


def read_jsonl(path: Path) -> Iterator[Example]:
    """One JSON object a line: ``{"text", "label"}`` or ``{"tokens", "tags"}``."""
    with _open_text(path) as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise _err(path, number, f"invalid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise _err(path, number, "expected a JSON object")
            yield _from_record(path, number, record)


def _from_record(path: Path, number: int, record: dict[str, object]) -> Example:
    if "tokens" in record and "tags" in record:
        tokens, tags = record["tokens"], record["tags"]
        if isinstance(tokens, str):
            tokens = tokens.split()
        if isinstance(tags, str):
            tags = tags.split()
        if not isinstance(tokens, list) or not isinstance(tags, list):
            raise _err(path, number, "tokens and tags must be lists (or space-separated)")
        if not tokens or len(tokens) != len(tags):
            raise _err(path, number, f"{len(tokens)} tokens but {len(tags)} tags")
        for tag in tags:
            _check_tag(path, number, str(tag))
        return TokenExample(tuple(map(str, tokens)), tuple(map(str, tags)))
    if "text" in record and "labels" in record:
        return _multilabel_record(path, number, record)
    if "text" in record and "label" in record:
        text, label = str(record["text"]).strip(), str(record["label"]).strip()
        if not text or not label:
            raise _err(path, number, "empty text or label")
        return TextExample(text, label)
    raise _err(path, number, "expected text,label or text,labels or tokens,tags fields")


def _multilabel_record(path: Path, number: int, record: dict[str, object]) -> Example:
    """``{"text", "labels"}``: labels a list or a comma-separated string (empty: none)."""
    text, values = str(record["text"]).strip(), record["labels"]
    if isinstance(values, str):
        values = list(split_labels(values))
    if not text or not isinstance(values, list):
        raise _err(path, number, "labels must be a list (or comma separated), text non-empty")
    return MultiLabelExample(text, tuple(str(v).strip() for v in values if str(v).strip()))


_READERS: dict[str, Callable[[Path], Iterator[Example]]] = {
    "conll": read_conll,
    "cola": read_cola,
    "tsv": read_tsv,
    "csv": read_csv,
    "jsonl": read_jsonl,
}


def read_examples(
    path: str | Path,
    fmt: str = "auto",
    max_examples: int | None = None,
    seed: int = 0,
) -> list[Example]:
    """Every example of a file; ``max_examples`` keeps a seeded random subset in file order."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    examples: list[Example] = list(_READERS[fmt](path))
    if not examples:
        raise DataError(f"{path}: no examples")
    kinds = {type(e) for e in examples}
    if len(kinds) > 1:
        raise DataError(f"{path}: mixes text and token examples")
    if max_examples is not None and len(examples) > max_examples:
        keep = sorted(random.Random(seed).sample(range(len(examples)), max_examples))
        examples = [examples[i] for i in keep]
    return examples


CASE_VIEWS = ("as-is", "lower", "upper")


def _recase(text: str, view: str) -> str:
    """``text`` lower- or upper-cased character by character; a character whose case
    mapping has another length ("ß" -> "SS") is kept, so words and offsets do not move."""
    if view == "as-is":
        return text
    if view not in CASE_VIEWS:
        raise ValueError(f"unknown case view {view!r}; choose one of {', '.join(CASE_VIEWS)}")
    change = str.lower if view == "lower" else str.upper
    return "".join(c2 if len(c2 := change(c)) == 1 else c for c in text)


def case_view(examples: Sequence[Example], view: str) -> list[Example]:
    """The examples as they read lower-cased or upper-cased (labels unchanged): NER must
    hold up on chat and queries (lower case) and on headlines (ALL CAPS) too."""
    out: list[Example] = []
    for e in examples:
        if isinstance(e, TokenExample):
            out.append(TokenExample(tuple(_recase(t, view) for t in e.tokens), e.tags))
        elif isinstance(e, MultiLabelExample):
            out.append(MultiLabelExample(_recase(e.text, view), e.labels))
        else:
            out.append(TextExample(_recase(e.text, view), e.label))
    return out


def example_kind(examples: Sequence[Example]) -> Kind:
    """The head kind the examples train (``sidetask train --kind`` must match it)."""
    if isinstance(examples[0], TokenExample):
        return "token"
    return "multilabel" if isinstance(examples[0], MultiLabelExample) else "sequence"


def multilabel_labels(examples: Sequence[Example]) -> list[str]:
    """Every label any multi-label example carries, sorted."""
    return sorted({v for e in examples if isinstance(e, MultiLabelExample) for v in e.labels})


def text_targets(examples: Sequence[Example], labels: Sequence[str]) -> np.ndarray:
    """Per example its target for the cache: the label index (``-1`` for token examples,
    whose targets are per token) or, for multi-label examples, a 0/1 row over ``labels``."""
    if examples and isinstance(examples[0], MultiLabelExample):
        out = np.zeros((len(examples), len(labels)), dtype=np.float32)
        for row, e in enumerate(examples):
            for value in e.labels if isinstance(e, MultiLabelExample) else ():
                out[row, label_index(labels, value)] = 1.0
        return out
    return np.array(
        [label_index(labels, e.label) if isinstance(e, TextExample) else -1 for e in examples],
        dtype=np.int64,
    )


def token_labels(examples: Sequence[Example]) -> list[str]:
    """BIO label set: O, then B-/I- for every entity type in sorted order."""
    kinds = sorted(
        {t.partition("-")[2] for e in examples if isinstance(e, TokenExample) for t in e.tags}
        - {""}
    )
    return ["O", *[f"{p}-{k}" for k in kinds for p in ("B", "I")]]


def label_index(labels: Sequence[str], value: str) -> int:
    """A file label as an index: the label name itself, or its position as an integer."""
    if value in labels:
        return list(labels).index(value)
    if value.lstrip("-").isdigit() and 0 <= int(value) < len(labels):
        return int(value)
    raise DataError(f"label {value!r} is neither one of {list(labels)} nor an index into them")
