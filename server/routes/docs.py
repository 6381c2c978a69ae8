"""/docs (Swagger UI) and /redoc from this server alone, for air-gapped clusters.

The assets are the ones the maintained fastapi-offline package bundles; the pages are
FastAPI's own, pointed at them. A Content-Security-Policy of ``'self'`` also stops what the
bundles would fetch by themselves (ReDoc's "powered by" logo comes from a CDN otherwise).
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_URL = "/docs-static"
OPENAPI_URL = "/openapi.json"
_OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# Swagger UI starts from an inline script; ReDoc runs its search in a blob: worker.
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'; "
    "font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'"
)

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", ""))


def _secured(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = _CSP
    return page


@router.get("/docs")
async def swagger(request: Request) -> HTMLResponse:
    root = _root(request)
    return _secured(
        get_swagger_ui_html(
            openapi_url=root + OPENAPI_URL,
            title="sidetask - Swagger UI",
            oauth2_redirect_url=root + _OAUTH2_REDIRECT,
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
        )
    )


@router.get(_OAUTH2_REDIRECT)
async def swagger_redirect() -> HTMLResponse:
    return _secured(get_swagger_ui_oauth2_redirect_html())


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return _secured(
        get_redoc_html(
            openapi_url=root + OPENAPI_URL,
            title="sidetask - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )
    )


def install(app: FastAPI) -> None:
    """Serve the bundled assets and the two pages (call only when docs are on)."""
    folder = resources.files("fastapi_offline") / "static"
    app.mount(STATIC_URL, StaticFiles(directory=str(folder)), name="docs-static")
    app.include_router(router)
