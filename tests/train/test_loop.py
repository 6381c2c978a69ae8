"""Training on a tiny random RoBERTa: the loss falls, the saved head reloads, resumes, and
the metrics recorded while training are what the engine gives for the same data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_harness import (
    NEG,
    POS,
    config,
    contradictory_file,
    final_dev_accuracy,
    ner_file,
    read_log,
    sentiment_file,
)

from heads.answers import Entity
from heads.io import load_head, save_head
from models.backbone import Backbone
from train.batches import Batch
from train.data import TokenExample, read_examples
from train.engine_eval import evaluate_head, make_engine, record_slice_metrics
from train.evaluate import predict_cached, predict_engine
from train.features import build_cache, subtoken_labels, with_case_ids
from train.loop import dataset_name, train
from train.objective import lower_case_some


@pytest.mark.parametrize(
    ("pooling", "block"), [("mean", "attention"), ("max", "attention"), ("mean", "encoder")]
)
def test_sequence_training_lowers_loss_and_engine_agrees(
    tmp_path: Path, tiny_roberta_dir: Path, tiny_roberta: Backbone, pooling: str, block: str
) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl")
    cfg = config(
        tmp_path,
        tiny_roberta_dir,
        "sequence",
        data,
        labels=["negative", "positive"],
        pooling=pooling,
        block=block,
        ff_dim=32,
    )
    best = train(cfg)
    log = read_log(cfg.out)
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    out = Path(cfg.out)
    assert (out / "layer_weights.png").is_file() and (out / "learning_curves.png").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training"]["parameters"] > 0
    assert manifest["pooling"] == pooling and manifest["block"] == block
    # The metric recorded from cached states is what the engine path gives on reload.
    engine = evaluate_head(out, read_examples(data), tiny_roberta)
    name = dataset_name(str(data))
    assert engine["correct"] == best[name]["correct"]
    assert manifest["metrics"][f"{name}_accuracy"] == pytest.approx(engine["accuracy"], abs=1e-9)


def test_reloaded_head_gives_identical_outputs(tmp_path: Path, tiny_roberta_dir: Path) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=1)
    cfg = config(tmp_path, tiny_roberta_dir, "sequence", data, epochs=1)
    train(cfg)
    a, b = load_head(cfg.out), load_head(cfg.out)
    x = torch.randn(2, a.mixer.num_states, 5, 64)
    mask = torch.ones(2, 5, dtype=torch.long)
    with torch.no_grad():
        ya = a.head(a.mixer(x), mask)
        yb = b.head(b.mixer(x), mask)
    assert torch.equal(ya, yb)


def test_resume_continues_from_checkpoint(tmp_path: Path, tiny_roberta_dir: Path) -> None:
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=1)
    train(config(tmp_path, tiny_roberta_dir, "sequence", data, epochs=1))
    first = read_log(str(tmp_path / "head"))
    train(config(tmp_path, tiny_roberta_dir, "sequence", data, epochs=2, resume=True))
    log = read_log(str(tmp_path / "head"))
    assert len(log) == len(first) + 1
    assert log[-1]["epoch"] == 2 and log[-1]["step"] > first[-1]["step"]


def test_token_training_and_slice_metrics(
    tmp_path: Path, tiny_roberta_dir: Path, tiny_roberta: Backbone
) -> None:
    data = ner_file(tmp_path / "ner.jsonl")
    cfg = config(tmp_path, tiny_roberta_dir, "token", data, epochs=3)
    best = train(cfg)
    log = read_log(cfg.out)
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    recorded = record_slice_metrics(cfg.out, [("toy", str(data))], tiny_roberta, slice_size=5)
    engine = evaluate_head(cfg.out, read_examples(data)[:5], tiny_roberta)
    assert recorded["toy5_f1"] == pytest.approx(engine["f1"], abs=1e-9)
    assert 0.0 <= best["selection"] <= 1.0


def test_subtoken_labels_continue_a_split_word(tiny_roberta: Backbone) -> None:
    ex = TokenExample(("Bobbington", "visited", "Paris"), ("B-PER", "O", "B-LOC"))
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    enc = tiny_roberta.tokenizer(ex.text, add_special_tokens=False, return_offsets_mapping=True)
    got = subtoken_labels(ex, enc["offset_mapping"], labels)
    words = enc.word_ids()
    first_of_word = {w: i for i, w in reversed(list(enumerate(words)))}
    assert got[first_of_word[0]] == labels.index("B-PER")
    assert (
        all(
            got[i] == labels.index("I-PER")
            for i, w in enumerate(words)
            if w == 0 and i != first_of_word[0]
        )
        or words.count(0) == 1
    )
    assert got[first_of_word[2]] == labels.index("B-LOC")


def cased_ner_file(path: Path) -> Path:
    """Entities that differ from plain words only by case, and one text longer than a
    window of the tiny model (64 tokens), so several windows share its case ids."""
    rows = [
        {"tokens": ["Apple", "sells", "apple", "pie"], "tags": ["B-ORG", "O", "O", "O"]},
        {"tokens": ["the", "Rose", "saw", "a", "rose"], "tags": ["O", "B-PER", "O", "O", "O"]},
        {
            "tokens": ["NATO", "and", "Bob", "Smith", "met"],
            "tags": ["B-ORG", "O", "B-PER", "I-PER", "O"],
        },
        {
            "tokens": ["Anna", "met", "BOB", "in", "paris", "1996", ","] * 12,
            "tags": ["B-PER", "O", "B-PER", "O", "O", "O", "O"] * 12,
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows * 3))
    return path


def entity_spans(predictions: list[list[Entity]]) -> list[list[tuple[object, ...]]]:
    return [[(e.start, e.end, e.label) for e in ents] for ents in predictions]


def test_token_head_with_case_features_trains_reloads_and_matches_the_engine(
    tmp_path: Path, tiny_roberta_dir: Path, tiny_roberta: Backbone
) -> None:
    data = cased_ner_file(tmp_path / "ner.jsonl")
    cfg = config(tmp_path, tiny_roberta_dir, "token", data, epochs=4, case_features=True)
    best = train(cfg)
    log = read_log(cfg.out)
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    head = load_head(cfg.out)
    assert (
        head.case_features
        and json.loads((Path(cfg.out) / "manifest.json").read_text())["case_features"]
    )
    assert head.head.case_embedding is not None
    assert head.head.case_embedding.weight.abs().sum() > 0  # learned from its zero start

    # Reloaded, the head gives identical outputs.
    again = load_head(cfg.out)
    x = torch.randn(2, head.mixer.num_states, 5, 64)
    mask = torch.ones(2, 5, dtype=torch.long)
    case = torch.randint(0, 7, (2, 5))
    with torch.no_grad():
        assert torch.equal(
            head.head(head.mixer(x), mask, case), again.head(again.mixer(x), mask, case)
        )

    # The dev metric recorded while training is what the engine gives.
    examples = read_examples(data)
    name = dataset_name(str(data))
    engine = evaluate_head(cfg.out, examples, tiny_roberta)
    assert engine["f1"] == pytest.approx(best[name]["f1"], abs=1e-9)

    # With a casing embedding that dominates the answer, the engine (case ids from the text
    # per window) and the training path (case ids per cached token) still agree entity for
    # entity, long text included: the two place every token's casing class alike.
    with torch.no_grad():
        head.head.case_embedding.weight.copy_(torch.randn(7, cfg.k) * 5)
    strong = tmp_path / "strong"
    save_head(head, strong)
    head = load_head(strong)
    split = build_cache(tiny_roberta, examples, head.labels, cfg.cache_dir, cfg.overlap)
    assert split.case_ids is None  # the cache itself is unchanged
    info = tiny_roberta.info
    cased = with_case_ids(split, examples, tiny_roberta.tokenizer, info.max_length, cfg.overlap)
    assert cased.case_ids is not None and len(cased.case_ids) == len(split.token_labels)
    assert split.num_windows > len(examples)  # the long text has several windows
    cached = predict_cached(
        head, split, examples, tiny_roberta.tokenizer, info.max_length, cfg.overlap
    )
    with torch.inference_mode():
        served = predict_engine(make_engine(tiny_roberta, head), head.name, examples, head.labels)
    assert entity_spans(served) == entity_spans(cached)
    assert any(entity_spans(cached))


def test_case_dropout_shows_some_windows_lower_cased() -> None:
    case = torch.tensor([[0, 4, 5, 6, 2, 0]] * 200)
    batch = Batch(torch.zeros(200, 1, 6, 1), torch.ones(200, 6), case, case, case, case)
    out = lower_case_some(batch, 0.3, seed=0).case_ids
    assert out is not None
    lowered = (out == torch.tensor([0, 3, 3, 3, 2, 0])).all(dim=1)
    kept = (out == case).all(dim=1)
    assert bool((lowered | kept).all()) and 30 < int(lowered.sum()) < 90
    assert torch.equal(out, lower_case_some(batch, 0.3, seed=0).case_ids)  # reproducible


def test_train_weights_decide_which_file_the_head_follows(
    tmp_path: Path, tiny_roberta_dir: Path
) -> None:
    """Two files that disagree on every label: the head learns the one with the larger weight."""
    truth = sentiment_file(tmp_path / "truth.jsonl")
    rows = [json.loads(x) for x in truth.read_text().splitlines()]
    flip = {"positive": "negative", "negative": "positive"}
    flipped = tmp_path / "flipped.jsonl"
    flipped.write_text("".join(json.dumps({**r, "label": flip[r["label"]]}) + "\n" for r in rows))
    accuracy = {}
    for name, weights in (("truth", [1.0, 0.02]), ("flipped", [0.02, 1.0])):
        accuracy[name] = final_dev_accuracy(
            tmp_path,
            tiny_roberta_dir,
            truth,
            name,
            train=[str(truth), str(flipped)],
            train_weights=weights,
        )
    assert accuracy["truth"] >= 0.8
    assert accuracy["flipped"] <= 0.3


def test_the_same_seed_gives_the_same_log_and_the_same_head(
    tmp_path: Path, tiny_roberta_dir: Path
) -> None:
    """Every step of a run (data, optimiser, epochs, evaluations) is seeded: two runs of one
    config log the same metrics and save the same bytes, so results can be reproduced."""
    data = sentiment_file(tmp_path / "toy.jsonl", repeat=2)
    runs = []
    for name in ("a", "b"):
        cfg = config(
            tmp_path,
            tiny_roberta_dir,
            "sequence",
            data,
            out=str(tmp_path / name),
            epochs=2,
            evals_per_epoch=2,
            ema=0.9,
            slice_size=0,
        )
        train(cfg)
        log = [
            {k: v for k, v in r.items() if k != "examples_per_second"} for r in read_log(cfg.out)
        ]
        runs.append((log, (Path(cfg.out) / "head.safetensors").read_bytes()))
    assert len(runs[0][0]) == 4
    assert runs[0] == runs[1]


def test_class_weights_tip_contradictory_labels_to_the_heavier_class(
    tmp_path: Path, tiny_roberta_dir: Path
) -> None:
    """Every text appears once per label: only the class weights can decide the prediction."""
    both = contradictory_file(tmp_path / "both.jsonl", repeat=2)
    all_positive = tmp_path / "positive.jsonl"
    all_positive.write_text(
        "".join(json.dumps({"text": t, "label": "positive"}) + "\n" for t in POS + NEG)
    )
    accuracy = {}
    for name, weights in (("pos", ["0.05", "1"]), ("neg", ["1", "0.05"])):
        accuracy[name] = final_dev_accuracy(
            tmp_path,
            tiny_roberta_dir,
            both,
            name,
            dev=[str(all_positive)],
            class_weights=weights,
        )
    assert accuracy["pos"] >= 0.9
    assert accuracy["neg"] <= 0.1
