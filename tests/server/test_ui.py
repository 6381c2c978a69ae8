"""The /ui playground in a real headless Chromium against a live `sidetask serve` (the packaged
MiniLM and its shipped heads): a link with ?text=&tasks= fills the form and runs it, the
highlighted entities are /analyze's (exact offsets), the score bars and embedding summary are
its numbers, each head's layer weights are drawn, the API key stays in the tab, and no request
leaves the server, on /ui as on /docs and /redoc.

Set SIDETASK_UI_SCREENSHOT=path to also save the screenshot shown in the README there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from serve_harness import serving

pytestmark = pytest.mark.slow

KEY = "playground-key"
TEXT = (
    "Angela Merkel met Emmanuel Macron in Paris to talk about Airbus. The meeting went really well."
)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium missing (apt-get install chromium; .ci/run does)")
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    chromium = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium,
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("ui") / "server.log"
    with serving(log, SIDETASK_API_KEYS=KEY) as base:
        yield base


def _watch(page: Any) -> list[str]:
    """Every URL the page sent, filled in as it loads. data: and blob: stay in the page; a
    request the page's Content-Security-Policy stopped never left the browser."""
    seen: list[str] = []
    local = ("data:", "blob:")
    page.on("request", lambda r: None if r.url.startswith(local) else seen.append(r.url))
    page.on("requestfailed", lambda r: seen.remove(r.url) if r.failure == "csp" else None)
    return seen


def test_a_link_reproduces_the_analysis_with_highlights_bars_and_weights(
    browser: Any, live: str
) -> None:
    page = browser.new_page()
    requests = _watch(page)
    page.goto(live + "/ui")
    page.wait_for_selector("#keybox:not([hidden])")  # keys are on: /tasks said 401
    page.fill("#key", KEY)
    page.dispatch_event("#key", "change")
    page.wait_for_selector("input[name=task][value=ner]")

    tasks = ["ner", "sentiment", "cola", "embedding"]
    page.goto(live + "/ui?" + urlencode({"text": TEXT, "tasks": ",".join(tasks)}))
    page.wait_for_selector("body[data-state=done]", timeout=60_000)
    assert page.input_value("#text") == TEXT
    checked = page.eval_on_selector_all(
        "input[name=task]:checked", "nodes => nodes.map(n => n.value)"
    )
    assert sorted(checked) == sorted(tasks)

    auth = {"Authorization": f"Bearer {KEY}"}
    body = {"texts": [TEXT], "tasks": tasks}
    expected = httpx.post(live + "/analyze", json=body, headers=auth, timeout=60).json()
    answer = expected["results"][0]

    marks = page.eval_on_selector_all(
        "[data-task=ner] mark",
        "ms => ms.map(m => [m.dataset.label, +m.dataset.start, +m.dataset.end, m.textContent])",
    )
    entities = [[e["label"], e["start"], e["end"], e["text"]] for e in answer["ner"]]
    assert marks == entities
    assert {m[0] for m in marks} >= {"PER", "LOC"}  # the shipped NER head finds them here
    assert all(TEXT[s:e] == t for _, s, e, t in marks)

    for task in ("sentiment", "cola"):
        top = page.get_attribute(f"[data-task={task}] .bar.top", "data-label")
        assert top == answer[task]["label"]
        values = page.eval_on_selector_all(
            f"[data-task={task}] .bar",
            "bs => bs.map(b => [b.dataset.label, b.querySelector('.value').textContent])",
        )
        assert values == [[k, f"{v:.3f}"] for k, v in answer[task]["scores"].items()]
    summary = page.text_content("[data-task=embedding] .embedding") or ""
    assert summary.startswith(f"{len(answer['embedding'])} numbers, L2 norm 1.0000")

    info = httpx.get(live + "/tasks", headers=auth).json()
    for head in info["heads"]:
        heights = page.eval_on_selector_all(
            f"figure[data-head={head['name']}] .col",
            "cs => cs.map(c => parseFloat(c.style.height))",
        )
        top = max(head["layer_weights"])
        assert heights == pytest.approx([100 * w / top for w in head["layer_weights"]], abs=0.06)

    stored = page.evaluate("() => [sessionStorage.length, localStorage.length, document.cookie]")
    assert stored == [1, 0, ""]  # the key lives in this tab's sessionStorage only
    assert KEY not in page.url
    assert requests and all(url.startswith(live + "/") for url in requests), requests

    shot = os.environ.get("SIDETASK_UI_SCREENSHOT")
    if shot:
        page.screenshot(path=shot, full_page=True)
    page.close()


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_render_without_leaving_the_server(browser: Any, live: str, path: str) -> None:
    page = browser.new_page()
    requests = _watch(page)
    page.goto(live + path)
    selector = ".swagger-ui .info .title" if path == "/docs" else "redoc-root, .api-content"
    page.wait_for_selector(selector, timeout=60_000)
    assert "sidetask" in (page.text_content("body") or "")
    assert requests and all(url.startswith(live + "/") for url in requests), requests
    page.close()
