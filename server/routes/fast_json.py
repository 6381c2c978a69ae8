"""A JSON response rendered by orjson, for the routes that answer with many floats.

Measured on the development machine: 32 MiniLM embeddings (258 kB of JSON) take 6.6 ms with
the standard library's encoder and 0.34 ms with orjson, and the encoding runs on the event
loop, where every other request waits for it (docs/server.md#json-encoding).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class OrjsonResponse(Response):
    """Like JSONResponse (same bytes for finite floats, compact), 20-25x faster to render."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
