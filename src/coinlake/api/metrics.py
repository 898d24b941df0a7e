"""Prometheus metrics: HTTP requests by route and status, their latency, and the pipeline's
own counters (polls, records, rejects, ETL passes…) read from the state store at scrape time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coinlake.state import StateStore


class PipelineCollector:
    """`coinlake_pipeline_events_total{name="source.records"}` for every state-store counter."""

    def __init__(self, state: StateStore, extra: Callable[[], dict[str, float]] | None = None):
        self.state = state
        self.extra = extra

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        events = CounterMetricFamily("coinlake_pipeline_events", "Pipeline counters by name.", labels=["name"])
        for name, value in self.state.counters().items():
            events.add_metric([name], value)
        yield events
        if self.extra is not None:
            gauges = GaugeMetricFamily("coinlake_pipeline_gauge", "Pipeline gauges by name.", labels=["name"])
            for name, gauge in self.extra().items():
                gauges.add_metric([name], gauge)
            yield gauges


class Metrics:
    def __init__(self, state: StateStore | None, extra: Callable[[], dict[str, float]] | None = None):
        """`state=None` (behind API Gateway, no state store): HTTP metrics only."""
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "coinlake_http_requests", "HTTP requests.", ["route", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "coinlake_http_request_duration_seconds",
            "HTTP request latency.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        if state is not None:
            self.registry.register(PipelineCollector(state, extra))


class MetricsMiddleware:
    """A pure ASGI middleware (cheaper than BaseHTTPMiddleware) that counts and times requests.

    The labelled children of the counter and the histogram are looked up once per (route,
    method, status) and kept (`labels()` validates and locks on every call); their number
    is bounded by the routes, methods and statuses the app has."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def _child(self, path: str, method: str, status: int) -> tuple[Any, Any]:
        key = (path, method, status)
        child = self._children.get(key)
        if child is None:
            m = self.metrics
            child = self._children[key] = (m.requests.labels(path, method, str(status)), m.latency.labels(path))
        return child

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            requests, latency = self._child(getattr(scope.get("route"), "path", "unmatched"), scope["method"], status)
            requests.inc()
            latency.observe(time.perf_counter() - started)
