"""OpenAI-compatible embeddings: POST /v1/embeddings and GET /v1/models[/{model}].

Drop-in for the official ``openai`` client (and what wraps it: LangChain, LlamaIndex). The
texts go through the same limits, scheduler, auth and metrics as /analyze; only the request
and answer shapes (and the error body, see openai_errors) are OpenAI's.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from engine.core import AnalyzeRequest, Engine
from server.errors import ErrorKind
from server.routes.deps import require_key
from server.routes.fast_json import OrjsonResponse
from server.routes.openai_errors import OpenAIError, OpenAIRoute, openai_error_responses
from server.routes.submit import check_text_limits, submit_and_wait
from server.state import AppState, get_state

router = APIRouter(prefix="/v1", tags=["OpenAI compatible"], route_class=OpenAIRoute)

_STARTED = int(time.time())  # ``created`` of the served model: when this process started


class EmbeddingsBody(BaseModel):
    """OpenAI's embeddings request. Token-array inputs are refused (send text)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"model": "sentence-transformers/all-MiniLM-L6-v2", "input": "I loved Paris."},
                {"model": "all-MiniLM-L6-v2", "input": ["a", "b"], "encoding_format": "base64"},
            ]
        },
    )

    input: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]] = Field(
        description="A text or a list of texts (token arrays are not accepted)."
    )
    model: StrictStr = Field(description="The served backbone's name or its last path part.")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="base64: little-endian float32 bytes (the official client's default)."
    )
    dimensions: StrictInt | None = Field(
        None, description="Only the backbone's own embedding size is accepted."
    )
    user: StrictStr | None = Field(None, description="Accepted and ignored.")


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 float32 bytes.")


class EmbeddingsUsage(BaseModel):
    prompt_tokens: int = Field(description="Tokens run through the backbone (specials included).")
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: EmbeddingsUsage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="When this server process started (Unix seconds).")
    owned_by: str = "sidetask"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def model_names(engine: Engine) -> list[str]:
    """The ids a client may send as ``model``: the backbone's name and its last path part."""
    name = engine.backbone.info.name
    return list(dict.fromkeys([name, name.rsplit("/", 1)[-1]]))


def _check_model(engine: Engine, model: str) -> None:
    names = model_names(engine)
    if model not in names:
        raise OpenAIError(
            ErrorKind.NOT_FOUND,
            f"model {model!r} is not served here; this server serves {names[0]!r}",
            param="model",
        )


def _texts(value: str | list[str] | list[int] | list[list[int]]) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not value:
        raise OpenAIError(ErrorKind.VALIDATION, "input must not be empty", param="input")
    if not all(isinstance(v, str) for v in value):
        raise OpenAIError(
            ErrorKind.VALIDATION,
            "token-array inputs are not supported; send the text itself",
            param="input",
        )
    return [str(v) for v in value]


def encode_vector(vector: list[float], encoding: str) -> list[float] | str:
    """``float`` as is; ``base64`` as little-endian float32 bytes, like OpenAI's API."""
    if encoding == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


def embedding_engine(state: AppState, early: bool) -> Engine:
    """The engine when its main task is an embedding (BART generates text instead)."""
    engine = state.loaded_engine() if early else state.ready_engine()[0]
    if engine.main_task != "embedding":
        raise OpenAIError(
            ErrorKind.VALIDATION,
            f"backbone {engine.backbone.info.name!r} serves {engine.main_task!r}, not embeddings",
            param="model",
        )
    return engine


@router.post(
    "/embeddings",
    summary="OpenAI-compatible embeddings (the backbone's main task)",
    response_model=EmbeddingsResponse,
    responses=openai_error_responses(401, 404, 413, 422, 429, 500, 503, 504),
    dependencies=[Depends(require_key)],
)
async def embeddings(body: EmbeddingsBody, request: Request) -> OrjsonResponse:
    state = get_state(request)
    early = state.arrived_before_drain(request)
    engine = embedding_engine(state, early)
    _check_model(engine, body.model)
    size = engine.backbone.info.hidden_size
    if body.dimensions is not None and body.dimensions != size:
        raise OpenAIError(
            ErrorKind.VALIDATION,
            f"dimensions={body.dimensions} is not supported; this model's embeddings have {size}",
            param="dimensions",
        )
    texts = _texts(body.input)
    check_text_limits(texts, state)
    state.metrics.task_requests.labels(task=engine.main_task).inc()
    result = await submit_and_wait(state, AnalyzeRequest(texts, [engine.main_task]), early, request)
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": encode_vector(vector, body.encoding_format),
        }
        for i, vector in enumerate(result.embeddings(engine.main_task))
    ]
    payload: dict[str, Any] = {
        "object": "list",
        "data": data,
        "model": engine.backbone.info.name,
        "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
    }
    return OrjsonResponse(payload)


def _card(engine: Engine) -> ModelCard:
    return ModelCard(id=engine.backbone.info.name, created=_STARTED)


@router.get(
    "/models",
    summary="OpenAI-compatible model list: the served backbone",
    response_model=ModelList,
    responses=openai_error_responses(401, 503),
    dependencies=[Depends(require_key)],
)
async def models(request: Request) -> ModelList:
    return ModelList(data=[_card(get_state(request).loaded_engine())])


@router.get(
    "/models/{model:path}",
    summary="One served model (the backbone, by its name or last path part)",
    response_model=ModelCard,
    responses=openai_error_responses(401, 404, 503),
    dependencies=[Depends(require_key)],
)
async def model(model: str, request: Request) -> ModelCard:
    engine = get_state(request).loaded_engine()
    _check_model(engine, model)
    return _card(engine)
