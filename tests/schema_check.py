"""Validate raw JSON bodies against the schema an app publishes at /openapi.json.

The answers leave the server as the engine's own JSON bytes (FastAPI does not re-validate a
returned Response), so the tests hold those bytes to the published schema themselves. Every
documented object is closed first: a key the schema does not list fails, so an answer field
added in ``heads/answers.py`` but not documented in ``server/schemas.py`` is caught.
"""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator


def _closed(node: Any) -> Any:
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _closed(value)
    elif isinstance(node, list):
        for value in node:
            _closed(value)
    return node


def response_validator(
    openapi: dict[str, Any], path: str, status: int, method: str = "post"
) -> Draft202012Validator:
    """A validator for the JSON body of ``method path`` answering ``status``; its ``$ref``s
    resolve inside the whole document (FastAPI's OpenAPI 3.1 schemas are JSON Schema 2020-12)."""
    escaped = path.replace("~", "~0").replace("/", "~1")
    response = openapi["paths"][path][method]["responses"][str(status)]
    assert "application/json" in response["content"], f"{status} of {path} has no JSON schema"
    root = _closed(copy.deepcopy(openapi))
    root["$ref"] = f"#/paths/{escaped}/{method}/responses/{status}/content/application~1json/schema"
    Draft202012Validator.check_schema(root)
    return Draft202012Validator(root)


def schema_errors(validator: Draft202012Validator, body: Any) -> list[str]:
    """Every violation, as 'path: message' (empty when the body matches)."""
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<body>'}: {e.message}"
        for e in validator.iter_errors(body)
    ]
