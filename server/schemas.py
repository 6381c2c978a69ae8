"""Request and response bodies of the HTTP API (documented in OpenAPI with examples)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

TASK_NAME_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"


class AnalyzeBody(BaseModel):
    """What to analyze. Limits on counts and lengths are settings (413 when exceeded)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"texts": ["I loved Paris in the spring."], "tasks": ["sentiment", "ner"]},
                {"texts": ["An embedding, please."], "tasks": ["embedding"]},
            ]
        },
    )

    texts: list[StrictStr] = Field(
        min_length=1, description="Texts to analyze; each answered independently."
    )
    tasks: list[StrictStr] | None = Field(
        None,
        min_length=1,
        description="Task names (see GET /tasks). Omitted: every loaded head, not the main task.",
    )

    @field_validator("texts")
    @classmethod
    def _encodable(cls, texts: list[str]) -> list[str]:
        for i, text in enumerate(texts):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"text {i} is not valid Unicode (lone surrogate)") from exc
        return texts


class ClassAnswer(BaseModel):
    label: str = Field(description="The most likely label.")
    score: float = Field(description="Its probability.")
    scores: dict[str, float] = Field(description="Probability of every label.")


class Entity(BaseModel):
    text: str = Field(description="text[start:end] of the analyzed text.")
    label: str
    start: int = Field(ge=0, description="Character offset (Python str index) of the start.")
    end: int = Field(ge=0, description="Character offset one past the end.")
    score: float


class LabelScore(BaseModel):
    label: str
    score: float = Field(description="Its probability (an independent sigmoid per label).")


class MultiLabelAnswer(BaseModel):
    """A multilabel head's answer: any number of labels per text."""

    labels: list[LabelScore] = Field(
        description="The labels whose score reaches the threshold, most likely first (may be "
        "empty)."
    )
    scores: dict[str, float] = Field(
        description="Every label's probability, so a client can apply its own threshold."
    )
    threshold: float = Field(description="The head's threshold (its manifest) that was applied.")


class Usage(BaseModel):
    tokens: int = Field(ge=0, description="Tokens run through the backbone (windows included).")
    layers_run: int = Field(ge=0, description="Backbone layers that ran (early exit shortens).")


class AnalyzeResponse(BaseModel):
    """One answer object per text: task name -> answer."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {
                            "sentiment": {
                                "label": "positive",
                                "score": 0.97,
                                "scores": {"negative": 0.03, "positive": 0.97},
                            },
                            "ner": [
                                {
                                    "text": "Paris",
                                    "label": "LOC",
                                    "start": 8,
                                    "end": 13,
                                    "score": 0.99,
                                }
                            ],
                        }
                    ],
                    "backbone": "sentence-transformers/all-MiniLM-L6-v2",
                    "usage": {"tokens": 9, "layers_run": 6},
                }
            ]
        }
    )

    results: list[dict[str, ClassAnswer | MultiLabelAnswer | list[Entity] | list[float] | str]]
    backbone: str
    usage: Usage


class HeadInfo(BaseModel):
    name: str
    kind: str = Field(
        description="sequence (one label per text), multilabel (any number of labels per text) "
        "or token (entities)."
    )
    labels: list[str]
    version: str
    description: str = ""
    k: int
    layer_weights: list[float] = Field(description="w_t over Z_0..Z_L (zeros are skipped).")
    last_layer: int = Field(description="Deepest layer this head needs.")
    metrics: dict[str, float] = Field(description="Dev-set metrics recorded at training.")
    parameters: int
    temperature: float = Field(
        1.0, description="The logits are divided by it before the scores (fitted calibration)."
    )
    threshold: float | None = Field(
        None,
        description="Multi-label heads: a label is in the answer when its score reaches this "
        "(null for kinds without a threshold).",
    )


class LoadFailureInfo(BaseModel):
    folder: str
    error: str


class TasksResponse(BaseModel):
    backbone: str
    model_type: str
    num_layers: int
    max_length: int
    main_task: str = Field(description="embedding (encoders) or generate (BART).")
    kernel: str = Field(description="Accumulator path in use: torch or triton.")
    dtype: str = Field(description="The backbone's dtype in use (what dtype auto resolved to).")
    dtype_setting: str = Field(description="The dtype setting asked for: auto or a dtype.")
    dtype_reason: str = Field(
        description="Why: the fidelity gate that passed, or why auto stayed float32."
    )
    accumulator_dtype: str = Field(description="dtype of the accumulator's projections.")
    head_layers_dtype: str = Field(description="dtype the heads' own layers compute in.")
    heads: list[HeadInfo]
    failures: list[LoadFailureInfo] = Field(description="Head folders that failed to load.")


class HealthResponse(BaseModel):
    status: str


class ReloadResponse(BaseModel):
    heads: list[str]
    added: list[str]
    removed: list[str]
    updated: list[str]
    failures: list[LoadFailureInfo]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str
    available: list[str] | None = Field(None, description="Available tasks (unknown_task).")
    error_id: str | None = Field(None, description="Look this up in the server log (500).")


class ErrorResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "unknown_task",
                        "message": "unknown task(s) 'pos'; available: ner, sentiment, embedding",
                        "available": ["ner", "sentiment", "embedding"],
                    }
                }
            ]
        }
    )

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the error statuses a route can answer."""
    described = {
        400: "Malformed request (e.g. an invalid Content-Length).",
        401: "Missing or wrong API key.",
        403: "Key is not an admin key.",
        413: "Too many texts, a text too long, or body too large.",
        415: "Body is not JSON.",
        422: "Invalid body or unknown task (the available tasks are listed).",
        429: "Queue full; retry after the Retry-After header's seconds.",
        500: "Internal error; the error_id is in the server log.",
        503: "Model loading or server draining.",
        504: "The request did not finish within the per-request timeout.",
    }
    return {s: {"model": ErrorResponse, "description": described[s]} for s in statuses}
