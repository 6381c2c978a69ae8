"""GET /ui: the playground page (plain HTML, JS and CSS shipped in the package); GET / leads there.

The page is static and holds no data: it calls /tasks and /analyze from the browser, with the
API key the user types (kept in the tab's sessionStorage). A Content-Security-Policy of
``'self'`` makes the browser refuse anything from another host.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

router = APIRouter(include_in_schema=False)

_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


@cache
def asset(name: str) -> bytes:
    """A playground file from the installed package (read once)."""
    return (resources.files("server") / "static" / "ui" / name).read_bytes()


def _file(name: str) -> Response:
    headers = {"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"}
    return Response(asset(name), media_type=_TYPES[name], headers=headers)


@router.get("/ui")
async def page() -> Response:
    return _file("index.html")


@router.get("/ui/app.js")
async def script() -> Response:
    return _file("app.js")


@router.get("/ui/app.css")
async def style() -> Response:
    return _file("app.css")


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=307)
