"""The engine answers each request from one pass: tasks routed, offsets exact, main task intact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from app_harness import assert_same_answers
from conftest import random_head

from engine.core import AnalyzeRequest, Engine, EngineConfig, UnknownTaskError
from engine.settings import EngineSettings
from heads.registry import HeadSet
from models.backbone import Backbone

TRICKY = [
    "Angela Merkel visited Paris.",
    "  leading   and   repeated   spaces  ",
    "Emoji 👩‍👩‍👧 family, ZWJ\u200dand CJK 東京 and RTL עברית text!",
    "Punctuation...!?;: (brackets) [more] {curly} 'quotes' \"double\"",
    "Ünïcödé àccents façade naïve coöperate",
    "x" * 3000,  # one very long word spanning several windows
    "",
    "\t\n",
    "Tabs\tand\nnewlines\r\ninside",
    "word " * 700,  # many windows
]


def _engine(backbone: Backbone, overlap: int = 16, **config: int) -> Engine:
    info = backbone.info
    heads = {
        "sentiment": random_head(info, "sentiment", k=16, seed=1),
        "ner": random_head(
            info,
            "ner",
            kind="token",
            k=16,
            seed=2,
            labels=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
        ),
    }
    # bias the NER head towards entities so the offset checks see many spans
    with torch.no_grad():
        heads["ner"].head.classifier.bias.copy_(torch.tensor([-2.0, 1.0, 1.0, 1.0, 1.0]))
    return Engine(
        backbone,
        HeadSet(heads),
        EngineConfig.from_settings(EngineSettings(window_overlap=overlap, **config)),
    )


@pytest.mark.parametrize("name", ["minilm", "tiny_roberta"])
def test_entity_offsets_point_into_the_original_text(
    name: str, request: pytest.FixtureRequest
) -> None:
    engine = _engine(request.getfixturevalue(name))
    result = engine.analyze(TRICKY, ["ner"])
    seen = 0
    for text, answer in zip(TRICKY, result.results, strict=True):
        assert set(answer) == {"ner"}
        last_end = 0
        for ent in answer["ner"]:
            assert text[ent.start : ent.end] == ent.text
            assert ent.text == ent.text.strip() and ent.text
            assert ent.start >= last_end  # ordered, non-overlapping
            last_end = ent.end
            assert 0.0 <= ent.score <= 1.0
            seen += 1
    assert seen > 20


def test_long_texts_give_the_same_entities_whatever_the_batching(minilm: Backbone) -> None:
    a = _engine(minilm).analyze(TRICKY, ["ner", "sentiment"])
    b = _engine(minilm, max_batch_size=1).analyze(TRICKY, ["ner", "sentiment"])
    assert_same_answers(a.results, b.results)


def test_short_text_answers_do_not_depend_on_the_rest_of_the_batch(minilm: Backbone) -> None:
    engine = _engine(minilm)
    together = engine.analyze(TRICKY[:5], ["sentiment", "ner"]).results
    alone = [engine.analyze([t], ["sentiment", "ner"]).results[0] for t in TRICKY[:5]]
    assert_same_answers(together, alone)


def test_requests_answered_together_get_the_answers_they_get_alone(minilm: Backbone) -> None:
    engine = _engine(minilm)
    requests = [
        AnalyzeRequest(TRICKY[:3], ["ner", "sentiment"]),
        AnalyzeRequest([TRICKY[5]], ["sentiment"]),
        AnalyzeRequest(TRICKY[3:5], ["ner", "embedding"]),
        AnalyzeRequest([TRICKY[6]], ["ner"]),
    ]
    prepared = [engine.prepare(r) for r in requests]
    for item in [it for p in prepared for it in p.windows]:
        engine.run_step([item])
    together = engine.finish_many(prepared)
    for request, result in zip(requests, together, strict=True):
        alone = engine.run_batch([request])[0]
        assert not isinstance(alone, Exception)
        assert_same_answers(result.results, alone.results)
        assert (result.tokens, result.layers_run) == (alone.tokens, alone.layers_run)


def test_embedding_is_identical_with_and_without_heads(minilm: Backbone) -> None:
    engine = _engine(minilm)
    with_heads = engine.analyze(TRICKY, ["embedding", "sentiment", "ner"]).results
    alone = engine.analyze(TRICKY, ["embedding"]).results
    assert [r["embedding"] for r in with_heads] == [r["embedding"] for r in alone]
    assert all(len(r["embedding"]) == 384 for r in alone)


def test_bart_generation_is_identical_with_and_without_heads(tiny_bart: Backbone) -> None:
    engine = _engine(tiny_bart)
    texts = ["a short text", "another, longer text about Paris"]
    with_heads = engine.analyze(texts, ["generate", "sentiment", "ner"]).results
    alone = engine.analyze(texts, ["generate"]).results
    assert [r["generate"] for r in with_heads] == [r["generate"] for r in alone]
    ids = tiny_bart.tokenizer(texts, return_tensors="pt", padding=True)
    direct = tiny_bart.model.generate(**ids, max_length=64, num_beams=1)
    decoded = tiny_bart.tokenizer.batch_decode(direct, skip_special_tokens=True)
    assert [r["generate"] for r in alone] == decoded


def test_tasks_omitted_means_every_head_but_not_the_main_task(minilm: Backbone) -> None:
    result = _engine(minilm).analyze(["hello"])
    assert set(result.results[0]) == {"sentiment", "ner"}
    scores = result.class_answers("sentiment")[0].scores
    assert sum(scores.values()) == pytest.approx(1.0)


def test_unknown_task_lists_the_available_ones(minilm: Backbone) -> None:
    with pytest.raises(UnknownTaskError, match="available: ner, sentiment, embedding"):
        _engine(minilm).analyze(["hello"], ["sentimnet"])


def test_each_request_gets_only_its_tasks_and_bad_ones_fail_alone(minilm: Backbone) -> None:
    engine = _engine(minilm)
    out = engine.run_batch(
        [
            AnalyzeRequest(["one", "two"], ["sentiment"]),
            AnalyzeRequest(["three"], ["nope"]),
            AnalyzeRequest(["four"], ["embedding"]),
        ]
    )
    assert [set(r) for r in out[0].results] == [{"sentiment"}, {"sentiment"}]  # type: ignore[union-attr]
    assert isinstance(out[1], UnknownTaskError)
    assert set(out[2].results[0]) == {"embedding"}  # type: ignore[union-attr]


def test_side_tasks_only_exit_early(minilm: Backbone) -> None:
    info = minilm.info
    logits = [0.0, 0.3, 0.0, -40.0, -40.0, -40.0, -40.0]
    head = random_head(info, "shallow", k=16, cutoff=0.01, layer_logits=logits)
    engine = Engine(minilm, HeadSet({"shallow": head}))
    assert engine.analyze(["some text"], ["shallow"]).layers_run == 2
    assert engine.analyze(["some text"], ["shallow", "embedding"]).layers_run == 6


def test_usage_counts_tokens(minilm: Backbone) -> None:
    result = _engine(minilm).analyze(["hello world"], ["sentiment"])
    assert result.tokens == 4  # [CLS] hello world [SEP]


def test_saved_heads_load_into_an_engine(tiny_roberta_dir: Path, tmp_path: Path) -> None:
    from engine.loading import build_engine
    from heads.io import save_head
    from server.settings import Settings

    probe = Backbone.load(tiny_roberta_dir)
    save_head(random_head(probe.info, "sentiment"), tmp_path / "sentiment")
    engine = build_engine(Settings(backbone=str(tiny_roberta_dir), heads_dir=[tmp_path]))
    assert engine.available_tasks == ["sentiment", "embedding"]
    assert engine.analyze(["hi"]).class_answers("sentiment")[0].label in {"negative", "positive"}
