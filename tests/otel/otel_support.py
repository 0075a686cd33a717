"""OpenTelemetry SDK pieces for the tests: in-memory span exporter and metric reader, and readers of both."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from jobqueue._otel import OTelObserver
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class Sdk:
    """One tracer and one meter provider, recording to memory."""

    tracer_provider: TracerProvider
    exporter: InMemorySpanExporter
    meter_provider: MeterProvider
    reader: InMemoryMetricReader

    @classmethod
    def new(cls) -> Sdk:
        tracer_provider = TracerProvider()
        exporter = InMemorySpanExporter()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        reader = InMemoryMetricReader()
        return cls(tracer_provider, exporter, MeterProvider(metric_readers=[reader]), reader)

    def observer(self) -> OTelObserver:
        return OTelObserver(self.tracer_provider, self.meter_provider)

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def points(self, metric: str, queue: str) -> list[Any]:
        """Data points of ``metric`` for ``queue`` (collects now)."""
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for item in _metrics(data):
            if item.name == metric:
                found += [
                    p
                    for p in item.data.data_points
                    if p.attributes.get("messaging.destination.name") == queue
                ]
        return found

    def total(self, metric: str, queue: str) -> int:
        """The sum of a counter (or the count of a histogram) over every attribute set."""
        total = 0
        for point in self.points(metric, queue):
            total += point.value if hasattr(point, "value") else point.count
        return total

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def _metrics(data: Any) -> Iterator[Any]:
    if data is None:
        return
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            yield from scope.metrics


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """What the tests compare of a span, as plain values (also across processes, as JSON)."""
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": format(span.context.trace_id, "032x"),
        "span_id": format(span.context.span_id, "016x"),
        "parent_id": None if span.parent is None else format(span.parent.span_id, "016x"),
        "attributes": dict(span.attributes or {}),
    }


async def wait_until(check: Callable[[], bool], *, timeout: float = 30.0, message: str = "condition") -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds (generous: the machine is shared)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() >= deadline:
            pytest.fail(f"{message}: still not true after {timeout} s")
        await asyncio.sleep(0.02)


async def wait_for_true(check: Callable[[], Awaitable[bool]], *, timeout: float = 60.0) -> None:
    """Like ``wait_until`` for an async check."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() >= deadline:
            pytest.fail(f"still not true after {timeout} s")
        await asyncio.sleep(0.05)
