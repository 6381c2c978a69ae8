"""Route dependencies: API key checks (also documented as OpenAPI security schemes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from server.state import get_state

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <key>")

Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
HeaderKey = Annotated[str | None, Depends(_header)]


# async although they do no I/O: FastAPI runs a plain ``def`` dependency in a worker thread,
# a thread hop on every request for a dictionary lookup.
async def require_key(request: Request, _b: Bearer, _h: HeaderKey) -> None:
    get_state(request).keys.check(request.headers)


async def require_admin(request: Request, _b: Bearer, _h: HeaderKey) -> None:
    get_state(request).keys.check(request.headers, admin=True)
