"""The clients people already use, unmodified, against a live `sidetask serve` on loopback:
the official `openai` package (its default base64 encoding, Bearer key, error classes) and
huggingface_hub's InferenceClient pointed at the TEI-style routes. Values equal /analyze's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_harness import serving

from models.backbone import Backbone

pytestmark = pytest.mark.slow

KEY = "real-client-key"
TEXTS = ["Maria met Anna in Paris.", "What a dull, pointless film."]


@pytest.fixture(scope="module")
def live(
    tiny_roberta_dir: Path, heads_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    log = tmp_path_factory.mktemp("live") / "server.log"
    with serving(
        log,
        "--backbone",
        str(tiny_roberta_dir),
        "--heads-dir",
        str(heads_root),
        SIDETASK_API_KEYS=KEY,
    ) as base:
        yield base


def _analyze(base: str, tasks: list[str]) -> dict:
    auth = {"Authorization": f"Bearer {KEY}"}
    body = {"texts": TEXTS, "tasks": tasks}
    answer = httpx.post(base + "/analyze", json=body, headers=auth, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_openai_client_embeddings_equal_analyze(live: str, tiny_roberta: Backbone) -> None:
    import openai

    client = openai.OpenAI(base_url=live + "/v1", api_key=KEY, max_retries=0)
    ref = _analyze(live, ["embedding"])
    expected = np.array([r["embedding"] for r in ref["results"]])

    created = client.embeddings.create(model=tiny_roberta.info.name, input=TEXTS)  # base64
    got = np.array([d.embedding for d in created.data])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert created.usage.prompt_tokens == ref["usage"]["tokens"]
    floats = client.embeddings.create(
        model=tiny_roberta.info.name, input=TEXTS[0], encoding_format="float"
    )
    np.testing.assert_allclose(floats.data[0].embedding, expected[0], atol=1e-4)
    assert [m.id for m in client.models.list()] == [tiny_roberta.info.name]


def test_openai_client_raises_its_own_errors(live: str, tiny_roberta: Backbone) -> None:
    import openai

    anonymous = openai.OpenAI(base_url=live + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as denied:
        anonymous.embeddings.create(model=tiny_roberta.info.name, input="x")
    assert denied.value.code == "unauthorized"
    client = openai.OpenAI(base_url=live + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert missing.value.param == "model"
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        client.embeddings.create(model=tiny_roberta.info.name, input="x", dimensions=8)
    assert refused.value.param == "dimensions"


def test_huggingface_inference_client_on_tei_routes(
    live: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import InferenceClient, constants

    # HF_HUB_OFFLINE (set for the whole suite) blocks every request the client makes, even
    # to loopback; the server here is local and the model is its URL, so no hub is contacted.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    ref = _analyze(live, ["embedding", "sentiment"])
    embedder = InferenceClient(model=live + "/embed", token=KEY)
    vector = embedder.feature_extraction(TEXTS[0])
    np.testing.assert_allclose(vector[0], ref["results"][0]["embedding"], atol=1e-4)

    classifier = InferenceClient(model=live + "/predict/sentiment", token=KEY)
    top = classifier.text_classification(TEXTS[1])
    expected = ref["results"][1]["sentiment"]
    found = top if isinstance(top, list) else [top]  # TEI answers one input with a flat list
    assert found[0].label == expected["label"]
    assert found[0].score == pytest.approx(expected["score"], abs=1e-4)
