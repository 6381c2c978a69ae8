"""Readers: every supported format parses, and a broken row is reported with its line."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from train.data import (
    DataError,
    MultiLabelExample,
    TextExample,
    TokenExample,
    detect_format,
    example_kind,
    label_index,
    multilabel_labels,
    read_examples,
    text_targets,
    token_labels,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_conll_sentences_split_on_blank_lines(tmp_path: Path) -> None:
    f = write(tmp_path / "a.txt", "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n")
    ex = read_examples(f)
    assert ex == [
        TokenExample(("EU", "rejects"), ("B-ORG", "O")),
        TokenExample(("Peter",), ("B-PER",)),
    ]
    assert token_labels(ex) == ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def test_conll_bad_tag_names_line(tmp_path: Path) -> None:
    f = write(tmp_path / "a.txt", "EU NNP B-NP B-ORG\n\nPeter NNP B-NP PERSON\n")
    with pytest.raises(DataError, match=r"a\.txt:3: .*PERSON"):
        read_examples(f)


def test_cola_raw_tsv(tmp_path: Path) -> None:
    f = write(tmp_path / "cola.tsv", "gj04\t1\t\tIt rains.\ngj04\t0\t*\tRains it the.\n")
    assert detect_format(f) == "cola"
    assert read_examples(f) == [TextExample("It rains.", "1"), TextExample("Rains it the.", "0")]


def test_cola_wrong_column_count_names_line(tmp_path: Path) -> None:
    f = write(tmp_path / "cola.tsv", "gj04\t1\t\tIt rains.\ngj04\t0\tRains it the.\n")
    with pytest.raises(DataError, match=r"cola\.tsv:2: expected 4"):
        read_examples(f)


def test_tsv_with_header_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "imdb.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write("text\tlabel\nA fine film.\t1\nDull.\t0\n")
    assert detect_format(path) == "tsv"
    assert read_examples(path) == [TextExample("A fine film.", "1"), TextExample("Dull.", "0")]


def test_tsv_missing_label_names_line(tmp_path: Path) -> None:
    f = write(tmp_path / "sst.tsv", "sentence\tlabel\ngood \t1\nbad \t\n")
    with pytest.raises(DataError, match=r"sst\.tsv:3: empty"):
        read_examples(f)


def test_csv_and_jsonl_user_formats(tmp_path: Path) -> None:
    c = write(tmp_path / "d.csv", 'text,label\n"Hello, world",positive\n')
    assert read_examples(c) == [TextExample("Hello, world", "positive")]
    j = write(tmp_path / "d.jsonl", '{"tokens": ["Ann", "sings"], "tags": ["B-PER", "O"]}\n')
    assert read_examples(j) == [TokenExample(("Ann", "sings"), ("B-PER", "O"))]


def test_jsonl_errors_name_line(tmp_path: Path) -> None:
    j = write(tmp_path / "d.jsonl", '{"text": "ok", "label": "a"}\n{"text": "broken"\n')
    with pytest.raises(DataError, match=r"d\.jsonl:2: invalid JSON"):
        read_examples(j)
    k = write(tmp_path / "e.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n')
    with pytest.raises(DataError, match=r"e\.jsonl:1: 2 tokens but 1 tags"):
        read_examples(k)


def test_csv_ragged_row_names_line(tmp_path: Path) -> None:
    c = write(tmp_path / "d.csv", "text,label\nfine,1\nno label\n")
    with pytest.raises(DataError, match=r"d\.csv:3: expected 2 columns"):
        read_examples(c)


def test_max_examples_is_a_seeded_subset_in_file_order(tmp_path: Path) -> None:
    f = write(
        tmp_path / "d.jsonl", "".join(f'{{"text": "t{i}", "label": "a"}}\n' for i in range(50))
    )
    a = read_examples(f, max_examples=10, seed=3)
    assert a == read_examples(f, max_examples=10, seed=3)
    idx = [int(e.text[1:]) for e in a]  # type: ignore[union-attr]
    assert len(idx) == 10 and idx == sorted(idx)


def test_label_index_accepts_names_and_indices() -> None:
    labels = ["negative", "positive"]
    assert label_index(labels, "positive") == 1
    assert label_index(labels, "0") == 0
    with pytest.raises(DataError):
        label_index(labels, "2")


def test_multilabel_tsv_splits_the_labels_column_on_commas_and_empty_means_none(
    tmp_path: Path,
) -> None:
    f = write(
        tmp_path / "topics.tsv",
        "text\tlabels\nthe match and the vote\tsports, politics\n"
        "a quiet day\t\nnew stars\tscience\n",
    )
    assert detect_format(f) == "tsv"
    ex = read_examples(f)
    assert ex == [
        MultiLabelExample("the match and the vote", ("sports", "politics")),
        MultiLabelExample("a quiet day", ()),
        MultiLabelExample("new stars", ("science",)),
    ]
    assert example_kind(ex) == "multilabel"
    assert multilabel_labels(ex) == ["politics", "science", "sports"]


def test_multilabel_jsonl_takes_a_list_or_a_comma_separated_string(tmp_path: Path) -> None:
    f = write(
        tmp_path / "t.jsonl",
        '{"text": "a", "labels": ["x", "y"]}\n{"text": "b", "labels": "y"}\n'
        '{"text": "c", "labels": []}\n',
    )
    assert read_examples(f) == [
        MultiLabelExample("a", ("x", "y")),
        MultiLabelExample("b", ("y",)),
        MultiLabelExample("c", ()),
    ]


def test_multilabel_rows_without_text_name_their_line(tmp_path: Path) -> None:
    f = write(tmp_path / "t.tsv", "text\tlabels\nfine\tx\n \tx\n")
    with pytest.raises(DataError, match=r"t\.tsv:3: empty text"):
        read_examples(f)


def test_multilabel_targets_are_one_row_of_zeros_and_ones_per_text() -> None:
    ex = [
        MultiLabelExample("a", ("y",)),
        MultiLabelExample("b", ()),
        MultiLabelExample("c", ("x", "y")),
    ]
    assert text_targets(ex, ["x", "y"]).tolist() == [[0, 1], [0, 0], [1, 1]]
    with pytest.raises(DataError, match="'z'"):
        text_targets([MultiLabelExample("a", ("z",))], ["x", "y"])
    assert text_targets([TextExample("a", "y"), TextExample("b", "x")], ["x", "y"]).tolist() == [
        1,
        0,
    ]
