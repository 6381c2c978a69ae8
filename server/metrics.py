"""Prometheus metrics, one registry per app (tests build many apps in one process).

The names are a contract with the dashboards and alerts in deploy/: do not rename them.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from server.gpu_metrics import GpuMemoryCollector

# *_created series add nothing for us and double the counter lines.
disable_created_metrics()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536, 262144)
RATIO_BUCKETS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)
LAYER_BUCKETS = tuple(float(i) for i in range(0, 49, 1))

__all__ = ["CONTENT_TYPE", "Metrics"]


class Metrics:
    """Every sidetask_* metric, registered on a fresh registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)
        r.register(GpuMemoryCollector())
        self.requests = Counter(
            "sidetask_requests_total",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "sidetask_request_duration_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "sidetask_queue_depth", "Requests with windows waiting to run.", registry=r
        )
        self.queue_wait = Histogram(
            "sidetask_queue_wait_seconds",
            "Time from enqueue to the start of its batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "sidetask_batch_size", "Requests per micro-batch.", buckets=COUNT_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            "sidetask_batch_tokens",
            "Tokens (without padding) per micro-batch.",
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.batch_windows = Histogram(
            "sidetask_batch_windows",
            "Windows per micro-batch (one backbone pass).",
            buckets=COUNT_BUCKETS,
            registry=r,
        )
        self.batch_padding = Histogram(
            "sidetask_batch_padding_ratio",
            "Fraction of a micro-batch's padded tokens that are padding.",
            buckets=RATIO_BUCKETS,
            registry=r,
        )
        self.request_windows = Histogram(
            "sidetask_request_windows",
            "Windows per request (long texts are cut into several).",
            buckets=(*COUNT_BUCKETS, 1024, 4096),
            registry=r,
        )
        self.cancelled = Counter(
            "sidetask_cancelled_requests_total",
            "Requests whose remaining work was dropped (timeout, client disconnect).",
            ["reason"],
            registry=r,
        )
        self.dropped_windows = Counter(
            "sidetask_dropped_windows_total",
            "Windows never run because their request was cancelled.",
            registry=r,
        )
        self.stage_duration = Histogram(
            "sidetask_stage_duration_seconds",
            "Engine stage durations (tokenize, backbone, heads, postprocess).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.layers_run = Histogram(
            "sidetask_layers_run",
            "Backbone layers run per batch (early exit lowers it).",
            buckets=LAYER_BUCKETS,
            registry=r,
        )
        self.task_requests = Counter(
            "sidetask_task_requests_total", "Requests naming each task.", ["task"], registry=r
        )
        self.texts = Counter("sidetask_texts_total", "Texts analyzed.", registry=r)
        self.tokens = Counter(
            "sidetask_tokens_total", "Tokens run through the backbone.", registry=r
        )
        self.model_info = Gauge(
            "sidetask_model_info",
            "The loaded model (value is always 1).",
            ["backbone", "heads", "versions", "kernel"],
            registry=r,
        )
        self.kernel_info = Gauge(
            "sidetask_kernel_info",
            "The accumulator path serving (torch, or triton once checked on the device).",
            ["path"],
            registry=r,
        )
        self.rejected = Counter(
            "sidetask_rejected_requests_total",
            "Requests refused before the model ran.",
            ["reason"],
            registry=r,
        )
        self.inflight = Gauge(
            "sidetask_inflight_requests", "HTTP requests being served.", registry=r
        )
        self.heads_loaded = Gauge("sidetask_heads_loaded", "Heads currently loaded.", registry=r)

    def observe_stage(self, stage: str, seconds: float) -> None:
        """The Engine's observer callback."""
        self.stage_duration.labels(stage=stage).observe(seconds)

    def set_model(self, backbone: str, heads: dict[str, str], kernel: str) -> None:
        """Replace the model_info series (one at a time) and the heads gauge."""
        self.model_info.clear()
        names = ",".join(sorted(heads))
        versions = ",".join(f"{n}={heads[n]}" for n in sorted(heads))
        self.model_info.labels(
            backbone=backbone, heads=names, versions=versions, kernel=kernel
        ).set(1)
        self.kernel_info.clear()
        self.kernel_info.labels(path=kernel).set(1)
        self.heads_loaded.set(len(heads))

    def scrape(self) -> bytes:
        return generate_latest(self.registry)
