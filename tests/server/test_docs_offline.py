"""/docs and /redoc work without the internet: every script, style and icon they name is
served by this server (fastapi-offline's bundled Swagger UI and ReDoc), none from a CDN."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest
from app_harness import running
from fastapi import FastAPI

_REFS = re.compile(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_this_server(
    make_app: Callable[..., FastAPI], page: str
) -> None:
    async def go() -> None:
        async with running(make_app()) as client:
            html = await client.get(page)
            assert html.status_code == 200
            refs = _REFS.findall(html.text)
            assert any(r.endswith(".js") for r in refs), refs
            assert "//" not in " ".join(refs), refs  # no scheme, no host: same origin only
            assert "cdn" not in html.text.lower() and "fonts.googleapis" not in html.text
            for ref in refs:
                asset = await client.get(ref)
                assert asset.status_code == 200, ref
                assert len(asset.content) > 1000 or ref.endswith(".json"), ref

    asyncio.run(go())


def test_no_docs_hides_the_pages_and_their_assets(make_app: Callable[..., FastAPI]) -> None:
    async def go() -> None:
        async with running(make_app(docs=False)) as client:
            for path in ["/docs", "/redoc", "/openapi.json", "/docs-static/swagger-ui.css"]:
                assert (await client.get(path)).status_code == 404, path

    asyncio.run(go())


def test_the_compatible_routes_are_described_in_openapi(make_app: Callable[..., FastAPI]) -> None:
    async def go() -> None:
        async with running(make_app()) as client:
            paths = (await client.get("/openapi.json")).json()["paths"]
        for path in ["/v1/embeddings", "/v1/models", "/embed", "/predict", "/predict/{task}"]:
            assert path in paths, path
        assert "/ui" not in paths

    asyncio.run(go())


def test_playground_is_served_from_the_package_and_the_root_leads_there(
    make_app: Callable[..., FastAPI],
) -> None:
    async def go() -> None:
        async with running(make_app(api_keys=["k"])) as client:  # the page itself needs no key
            root = await client.get("/")
            page = await client.get("/ui")
            refs = _REFS.findall(page.text)
            assets = [await client.get(ref) for ref in refs if ref.startswith("/ui/")]
        assert root.status_code == 307 and root.headers["location"] == "/ui"
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert sorted(r for r in refs if r.startswith("/ui/")) == ["/ui/app.css", "/ui/app.js"]
        assert all(a.status_code == 200 and a.content for a in assets)
        assert "//" not in " ".join(r for r in refs if not r.startswith("data:"))

    asyncio.run(go())
