"""A Prometheus ``/metrics`` endpoint: this process's job counters, and the storage's counts at scrape time.

Needs ``prometheus-client`` (``jobqueue-core[prometheus]``); imported only by
``jobqueue worker --metrics-port`` and ``jobqueue metrics``.

Two sources feed one registry:

- ``PrometheusObserver``: what this process did (enqueued, completed, failed,
  retried, stalled; attempt durations and end-to-end latency), attached to
  the worker's queue and reaper like the OpenTelemetry observer;
- ``StorageCollector``: read at each scrape from the storage's ``Monitoring``
  capability: jobs per state of every namespace, and workers alive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ._contract.capabilities import Monitoring
from ._contract.storage import Storage
from ._durations import now_ms
from ._telemetry import Outcome, error_type
from ._types import JobState

__all__ = ["MetricsServer", "PrometheusObserver", "StorageCollector", "new_registry", "serve"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_SCRAPE_TIMEOUT = 10.0  # seconds a scrape waits for the storage; Prometheus' own default timeout is 10 s

log = logging.getLogger("jobqueue.metrics")


def new_registry() -> CollectorRegistry:
    """A registry with the process, platform and garbage-collector metrics every exporter shows."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


class _Send:
    __slots__ = ("_counter",)
    headers = None

    def __init__(self, counter: Counter) -> None:
        self._counter = counter

    def end(self, accepted: Sequence[bool] | None, error: BaseException | None) -> None:
        if accepted:
            count = sum(accepted)
            if count:
                self._counter.inc(count)


@dataclass(slots=True)
class _Process:
    observer: PrometheusObserver
    queue: str
    created_at_ms: int | None
    started: float

    def end(self, outcome: Outcome, error: BaseException | None) -> None:
        metrics = self.observer
        metrics.duration.labels(self.queue, outcome).observe(time.perf_counter() - self.started)
        if outcome == "completed":
            metrics.completed.labels(self.queue).inc()
        elif outcome in ("failed", "retried"):
            counter = metrics.failed if outcome == "failed" else metrics.retried
            counter.labels(self.queue, error_type(error) or "").inc()
        if outcome in ("completed", "failed") and self.created_at_ms is not None:
            metrics.latency.labels(self.queue).observe(max(0, now_ms() - self.created_at_ms) / 1000)


class PrometheusObserver:
    """Counts what this process's queues and reaper do (see ``jobqueue._telemetry.Observer``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"jobqueue_jobs_{name}", doc, ["queue", *labels], registry=registry)

        self.enqueued = counter("enqueued", "Jobs accepted by the storage (duplicates not counted).")
        self.completed = counter("completed", "Jobs that completed.")
        self.failed = counter("failed", "Jobs that failed for good.", "error_type")
        self.retried = counter("retried", "Failed attempts with a retry due.", "error_type")
        self.stalled_jobs = counter("stalled", "Stalled jobs recovered by this process's reaper.")
        self.duration = Histogram(
            "jobqueue_process_duration_seconds",
            "Duration of one attempt on this worker.",
            ["queue", "outcome"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.latency = Histogram(
            "jobqueue_job_latency_seconds",
            "From enqueue to the final outcome (completed or failed).",
            ["queue"],
            buckets=_BUCKETS,
            registry=registry,
        )

    def send(self, queue: str, job_id: str | None, count: int) -> _Send:
        """Count the jobs the storage accepts."""
        return _Send(self.enqueued.labels(queue))

    def process(
        self, queue: str, job_id: str, attempt: int, headers: Mapping[str, str], created_at_ms: int | None
    ) -> _Process:
        """Time one attempt and count its outcome."""
        return _Process(self, queue, created_at_ms, time.perf_counter())

    def stalled(self, queue: str, count: int) -> None:
        """Count recoveries."""
        self.stalled_jobs.labels(queue).inc(count)

    def watch(self, storage: Storage) -> Callable[[], None]:
        """Show this queue's counters at 0 from the start (``StorageCollector`` reads the counts)."""
        for counter in (self.enqueued, self.completed, self.stalled_jobs):
            counter.labels(storage.name)
        return _nothing


def _nothing() -> None:
    pass


class StorageCollector(Collector):
    """Reads the storage when Prometheus scrapes: jobs per state of every namespace, workers alive.

    The scrape runs on the HTTP server's thread; the storage calls run on
    the process's event loop, and the scrape waits up to 10 s for them.
    """

    def __init__(self, storage: Storage, loop: asyncio.AbstractEventLoop) -> None:
        if not isinstance(storage, Monitoring):
            raise TypeError(f"{type(storage).__name__} does not implement Monitoring")
        self._storage = storage
        self._loop = loop

    def describe(self) -> list[Metric]:
        """Nothing: without it the registry would read the storage when the collector is registered."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The gauges, or ``jobqueue_storage_up 0`` when the storage could not be read."""
        up = GaugeMetricFamily("jobqueue_storage_up", "1 when this scrape could read the storage, else 0.")
        try:
            future = asyncio.run_coroutine_threadsafe(self._snapshot(), self._loop)
            counts, workers = future.result(_SCRAPE_TIMEOUT)
        except Exception as exc:  # one failed scrape must not kill the endpoint
            log.warning("metrics: could not read the storage: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("jobqueue_jobs", "Jobs per queue and state, now.", labels=["queue", "state"])
        for queue, by_state in sorted(counts.items()):
            for state in JobState:
                jobs.add_metric([queue, state.value], by_state.get(state, 0))
        yield jobs
        alive = GaugeMetricFamily(
            "jobqueue_workers_alive", "Workers whose heartbeat is current, per queue.", labels=["queue"]
        )
        for queue, count in sorted(workers.items()):
            alive.add_metric([queue], count)
        yield alive

    async def _snapshot(self) -> tuple[dict[str, Mapping[JobState, int]], dict[str, int]]:
        storage = self._storage
        assert isinstance(storage, Monitoring)
        names = {storage.name, *await storage.list_namespaces()}
        counts: dict[str, Mapping[JobState, int]] = {}
        workers: dict[str, int] = {}
        now = now_ms()
        for name in names:
            view = storage.namespace(name)
            assert isinstance(view, Monitoring)
            counts[name] = await view.counts()
            workers[name] = sum(1 for worker in await view.list_workers() if worker.expires_at > now)
        return counts, workers


@dataclass(frozen=True, slots=True)
class MetricsServer:
    """A running ``/metrics`` endpoint."""

    server: WSGIServer
    host: str

    @property
    def port(self) -> int:
        """The port it listens on (the one the OS chose when asked for port 0)."""
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        """Where to scrape it."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()


def serve(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve ``registry`` on ``host:port`` from a daemon thread.

    Raises:
        OSError: the port is taken or the address is not one of this host's.
    """
    server, _thread = start_http_server(port, host, registry)
    return MetricsServer(server, host)
