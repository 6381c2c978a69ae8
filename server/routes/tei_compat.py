"""text-embeddings-inference compatible routes: POST /embed and POST /predict[/{task}].

Clients written for TEI (its HTTP API, ``huggingface_hub.InferenceClient`` pointed at the
route's URL) work unchanged. A TEI server holds one classifier, sidetask several sequence
heads: ``/predict/{task}`` names the head in the path (so a client's base URL can point at
it); plain ``/predict`` takes a ``task`` field, or uses the only sequence head when there is
exactly one. Same limits, scheduler, auth and metrics as /analyze; errors in sidetask's shape.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from engine.core import AnalyzeRequest, Engine
from heads.answers import ClassAnswer, MultiLabelAnswer, TaskAnswer
from server.errors import ApiError, ErrorKind
from server.routes.deps import require_key
from server.routes.fast_json import OrjsonResponse
from server.routes.submit import check_text_limits, submit_and_wait
from server.schemas import error_responses
from server.state import AppState, get_state

router = APIRouter(tags=["text-embeddings-inference compatible"])

_ERRORS = error_responses(401, 413, 415, 422, 429, 500, 503, 504)


class EmbedBody(BaseModel):
    """TEI's /embed request."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"inputs": ["I loved Paris."]}]}
    )

    inputs: StrictStr | list[StrictStr] = Field(description="A text or a list of texts.")
    normalize: StrictBool = Field(
        True, description="sidetask's embeddings are L2-normalised; false is refused."
    )
    truncate: StrictBool | None = Field(
        None,
        description="Accepted; a text longer than the backbone's window is always embedded "
        "from its first window (TEI's truncate=true), never refused.",
    )
    truncation_direction: Literal["right", "Right"] | None = Field(
        None, description="Only right (keep the start of the text) is supported."
    )


class PredictParameters(BaseModel):
    """The ``parameters`` object huggingface_hub's InferenceClient sends."""

    model_config = ConfigDict(extra="forbid")
    top_k: int | None = Field(None, gt=0, description="Keep the k most likely labels.")
    function_to_apply: Literal["softmax"] | None = Field(
        None, description="Scores are softmax probabilities; other functions are refused."
    )


class PredictBody(BaseModel):
    """TEI's /predict request, plus ``task`` (which head) and InferenceClient's parameters."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"inputs": "I loved it.", "task": "sentiment"}]},
    )

    inputs: StrictStr | list[StrictStr] = Field(description="A text or a list of texts.")
    task: StrictStr | None = Field(
        None, description="Sequence head to answer; optional when only one is loaded."
    )
    raw_scores: StrictBool = Field(False, description="Only probabilities (false) are served.")
    truncate: StrictBool | None = Field(None, description="Accepted; long texts are windowed.")
    parameters: PredictParameters | None = None


class Prediction(BaseModel):
    label: str
    score: float


def _engine(state: AppState, request: Request) -> tuple[Engine, bool]:
    early = state.arrived_before_drain(request)
    return (state.loaded_engine() if early else state.ready_engine()[0]), early


def _as_list(inputs: str | list[str]) -> list[str]:
    if isinstance(inputs, list) and not inputs:
        raise ApiError(ErrorKind.VALIDATION, "inputs must not be empty")
    return [inputs] if isinstance(inputs, str) else list(inputs)


@router.post(
    "/embed",
    summary="TEI-compatible embeddings: a list of vectors, one per input",
    response_model=list[list[float]],
    responses=_ERRORS,
    dependencies=[Depends(require_key)],
)
async def embed(body: EmbedBody, request: Request) -> OrjsonResponse:
    state = get_state(request)
    engine, early = _engine(state, request)
    if engine.main_task != "embedding":
        raise ApiError(
            ErrorKind.VALIDATION,
            f"backbone {engine.backbone.info.name!r} serves {engine.main_task!r}, not embeddings",
        )
    if not body.normalize:
        raise ApiError(
            ErrorKind.VALIDATION,
            "normalize=false is not supported: the embedding is mean-pooled and L2-normalised",
        )
    texts = _as_list(body.inputs)
    check_text_limits(texts, state)
    state.metrics.task_requests.labels(task=engine.main_task).inc()
    result = await submit_and_wait(state, AnalyzeRequest(texts, [engine.main_task]), early, request)
    return OrjsonResponse(result.embeddings(engine.main_task))


def sequence_heads(engine: Engine) -> list[str]:
    """Heads that answer a text with a score per label (sequence and multi-label kinds): the
    ones ``/predict`` serves (token heads answer entities)."""
    return [n for n in engine.heads.names if engine.heads.heads[n].kind.per_text]


def _pick_task(engine: Engine, task: str | None) -> str:
    heads = sequence_heads(engine)
    if task is None:
        if len(heads) == 1:
            return heads[0]
        raise ApiError(
            ErrorKind.UNKNOWN_TASK,
            "name the sequence head: POST /predict/{task} or a 'task' field; "
            f"available: {', '.join(heads) or 'none'}",
            available=heads,
        )
    if task not in heads:
        raise ApiError(
            ErrorKind.UNKNOWN_TASK,
            f"{task!r} is not a loaded sequence head; available: {', '.join(heads) or 'none'}",
            available=heads,
        )
    return task


def predictions(answer: TaskAnswer, top_k: int | None = None) -> list[dict[str, Any]]:
    """TEI's shape: every label with its probability, most likely first (a multi-label
    head's independent scores, as TEI gives for multi-label models)."""
    if not isinstance(answer, ClassAnswer | MultiLabelAnswer):
        raise TypeError(f"/predict needs a per-text answer, got {type(answer).__name__}")
    ranked = sorted(answer.scores.items(), key=lambda kv: kv[1], reverse=True)
    return [{"label": label, "score": score} for label, score in ranked[:top_k]]


async def _predict(body: PredictBody, task: str | None, request: Request) -> OrjsonResponse:
    state = get_state(request)
    engine, early = _engine(state, request)
    if body.raw_scores:
        raise ApiError(ErrorKind.VALIDATION, "raw_scores=true is not supported (probabilities)")
    name = _pick_task(engine, task if task is not None else body.task)
    texts = _as_list(body.inputs)
    check_text_limits(texts, state)
    state.metrics.task_requests.labels(task=name).inc()
    result = await submit_and_wait(state, AnalyzeRequest(texts, [name]), early, request)
    top_k = body.parameters.top_k if body.parameters else None
    ranked = [predictions(answer[name], top_k) for answer in result.results]
    return OrjsonResponse(ranked[0] if isinstance(body.inputs, str) else ranked)


@router.post(
    "/predict",
    summary="TEI-compatible classification by a sequence head ('task' field or the only one)",
    response_model=list[Prediction] | list[list[Prediction]],
    responses=_ERRORS,
    dependencies=[Depends(require_key)],
)
async def predict(body: PredictBody, request: Request) -> OrjsonResponse:
    return await _predict(body, None, request)


@router.post(
    "/predict/{task}",
    summary="TEI-compatible classification by the sequence head named in the path",
    response_model=list[Prediction] | list[list[Prediction]],
    responses=_ERRORS,
    dependencies=[Depends(require_key)],
)
async def predict_task(task: str, body: PredictBody, request: Request) -> OrjsonResponse:
    if body.task is not None and body.task != task:
        raise ApiError(ErrorKind.VALIDATION, f"task {body.task!r} contradicts the path's {task!r}")
    return await _predict(body, task, request)
