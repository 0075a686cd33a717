"""OpenTelemetry traces and metrics, after the messaging semantic conventions.

Imported only when ``opentelemetry-api`` is installed (``jobqueue-core[otel]``).
Spans: ``send {queue}`` (PRODUCER) around an enqueue, whose context travels in
the job's envelope headers, and ``process {queue}`` (CONSUMER) around each
attempt, a child of that context: retries, scheduled jobs and jobs recovered
after a crash keep their envelope, so every attempt joins the producer's trace.

With no SDK configured (the API's proxy providers) nothing is recorded: a
producer only forwards a trace context that is already current, and metrics
are skipped, so the cost is a few attribute reads per job.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from opentelemetry import context, metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, NoOpMeterProvider, Observation
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, SpanKind, StatusCode, Tracer
from opentelemetry.trace import TracerProvider as APITracerProvider

from ._durations import now_ms
from ._telemetry import Outcome, ProcessScope, SendScope, error_type
from ._types import JobState

if TYPE_CHECKING:
    from ._contract.storage import Storage

__all__ = ["METRICS", "OTelObserver"]

_SCOPE = "jobqueue"
SYSTEM = "jobqueue"
QUEUE = "messaging.destination.name"
STATE = "jobqueue.job.state"
OUTCOME = "jobqueue.job.outcome"
ATTEMPT = "jobqueue.job.attempt"
ERROR_TYPE = "error.type"
# semantic conventions' advice for messaging durations, in seconds
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0)
_DEPTH_MAX_AGE = 1.0  # seconds a queue-depth reading is reused for
_DEPTH_WAIT = 2.0
_RECHECK_EVERY = 1.0  # seconds between look-ups of the global providers  # how long a collection on another thread waits for fresh counts

METRICS = {
    "enqueued": "jobqueue.jobs.enqueued",
    "completed": "jobqueue.jobs.completed",
    "failed": "jobqueue.jobs.failed",
    "retried": "jobqueue.jobs.retried",
    "stalled": "jobqueue.jobs.stalled",
    "duration": "messaging.process.duration",
    "latency": "jobqueue.job.latency",
    "depth": "jobqueue.queue.depth",
}
"""The metric names, by what they count."""


def _version() -> str:
    try:
        return version("jobqueue-core")
    except PackageNotFoundError:
        return "0"


def _is_noop_meter_provider(provider: MeterProvider) -> bool:
    # the API's proxy (no SDK set yet) has no public class; its name is stable since 1.12
    return isinstance(provider, NoOpMeterProvider) or type(provider).__name__ == "_ProxyMeterProvider"


class _Instruments:
    """The instruments of one meter provider, and the queues whose depth its gauge reports."""

    def __init__(self, meter: Meter) -> None:
        def counter(key: str, description: str) -> Any:
            return meter.create_counter(METRICS[key], unit="{job}", description=description)

        def histogram(key: str, description: str) -> Any:
            return meter.create_histogram(
                METRICS[key], unit="s", description=description, explicit_bucket_boundaries_advisory=_BUCKETS
            )

        self.enqueued = counter("enqueued", "Jobs accepted by the storage (duplicates not counted).")
        self.completed = counter("completed", "Jobs that completed.")
        self.failed = counter("failed", "Jobs that failed for good.")
        self.retried = counter("retried", "Failed attempts with a retry due.")
        self.stalled = counter("stalled", "Stalled jobs recovered by a reaper.")
        self.duration = histogram("duration", "Duration of one attempt on a worker.")
        self.latency = histogram("latency", "From enqueue to the final outcome (completed or failed).")
        self.sources: set[_DepthSource] = set()
        self._lock = threading.Lock()
        meter.create_observable_gauge(
            METRICS["depth"], [self._observe_depth], unit="{job}", description="Jobs per state of a queue."
        )

    def add_source(self, source: _DepthSource) -> Callable[[], None]:
        with self._lock:
            self.sources.add(source)

        def remove() -> None:
            with self._lock:
                self.sources.discard(source)

        return remove

    def _observe_depth(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            sources = list(self.sources)
        observations: list[Observation] = []
        for source in sources:
            observations += source.observe()
        return observations


class _DepthSource:
    """Counts per state of one queue, fetched on the queue's loop when a reader collects."""

    def __init__(self, storage: Storage, loop: asyncio.AbstractEventLoop) -> None:
        self._storage = storage
        self._loop = loop
        self._counts: Mapping[JobState, int] = {}
        self._fetched = 0.0
        self._future: concurrent.futures.Future[None] | None = None

    async def _refresh(self) -> None:
        from ._contract.capabilities import Monitoring

        assert isinstance(self._storage, Monitoring)
        try:
            self._counts = await self._storage.counts()
            self._fetched = time.monotonic()
        except Exception:  # a storage outage shows as stale figures; the worker logs outages itself
            return

    def observe(self) -> list[Observation]:
        if time.monotonic() - self._fetched > _DEPTH_MAX_AGE and not self._loop.is_closed():
            if self._future is None or self._future.done():
                self._future = asyncio.run_coroutine_threadsafe(self._refresh(), self._loop)
            if not _on_loop(self._loop):  # a reader's own thread may wait; the loop's thread must not
                with contextlib.suppress(Exception):  # slow or failing storage: report what is known
                    self._future.result(_DEPTH_WAIT)
        name = self._storage.name
        return [
            Observation(count, {QUEUE: name, STATE: state.value, "messaging.system": SYSTEM})
            for state, count in self._counts.items()
        ]


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


_instruments: weakref.WeakKeyDictionary[MeterProvider, _Instruments] = weakref.WeakKeyDictionary()
_instruments_lock = threading.Lock()


def _instruments_of(provider: MeterProvider) -> _Instruments:
    # one set per provider: an SDK ignores the callbacks of a gauge created twice under one name
    with _instruments_lock:
        found = _instruments.get(provider)
        if found is None:
            found = _instruments[provider] = _Instruments(provider.get_meter(_SCOPE, _version()))
        return found


class _SendScope:
    __slots__ = ("_attrs", "_instruments", "_span", "_token", "headers")

    def __init__(
        self,
        tracer: Tracer | None,
        instruments: _Instruments | None,
        queue: str,
        job_id: str | None,
        count: int,
    ) -> None:
        self._instruments = instruments
        self._attrs = {"messaging.system": SYSTEM, QUEUE: queue}
        self._span = None
        self._token = None
        self.headers: dict[str, str] | None = None
        if tracer is not None:
            attributes: dict[str, Any] = {
                **self._attrs,
                "messaging.operation.type": "send",
                "messaging.operation.name": "send",
            }
            if job_id is not None:
                attributes["messaging.message.id"] = job_id
            if count != 1:
                attributes["messaging.batch.message_count"] = count
            self._span = span = tracer.start_span(
                f"send {queue}", kind=SpanKind.PRODUCER, attributes=attributes
            )
            ctx = trace.set_span_in_context(span)
            self._token = context.attach(ctx)  # the storage client's own spans nest under this one
        elif not trace.get_current_span().get_span_context().is_valid:
            return  # no SDK and no incoming trace: nothing to carry
        self.headers = {}
        propagate.inject(self.headers)

    def end(self, accepted: Sequence[bool] | None, error: BaseException | None) -> None:
        span = self._span
        if span is not None:
            if self._token is not None:
                context.detach(self._token)
            if error is not None:
                span.record_exception(error)
                span.set_status(StatusCode.ERROR, str(error))
                span.set_attribute(ERROR_TYPE, error_type(error) or "")
            span.end()
        if accepted is not None and self._instruments is not None:
            count = sum(accepted)
            if count:
                self._instruments.enqueued.add(count, self._attrs)


class _ProcessScope:
    __slots__ = ("_attrs", "_created_at", "_instruments", "_span", "_started", "_token")

    def __init__(
        self,
        tracer: Tracer | None,
        instruments: _Instruments | None,
        queue: str,
        job_id: str,
        attempt: int,
        headers: Mapping[str, str],
        created_at_ms: int | None,
    ) -> None:
        self._instruments = instruments
        self._attrs = {"messaging.system": SYSTEM, QUEUE: queue}
        self._created_at = created_at_ms
        self._started = time.perf_counter()
        self._span = None
        self._token = None
        if tracer is not None:
            parent = propagate.extract(headers) if headers else None
            self._span = span = tracer.start_span(
                f"process {queue}",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={
                    **self._attrs,
                    "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "messaging.message.id": job_id,
                    ATTEMPT: attempt,
                },
            )
            # the handler's task copies this context: its own spans are children of this one
            self._token = context.attach(trace.set_span_in_context(span, parent))

    def end(self, outcome: Outcome, error: BaseException | None) -> None:
        kind = error_type(error)
        span = self._span
        if span is not None:
            if self._token is not None:
                context.detach(self._token)
            span.set_attribute(OUTCOME, outcome)
            if error is not None:
                span.record_exception(error)
                span.set_attribute(ERROR_TYPE, kind or "")
                if outcome == "failed":
                    span.set_status(StatusCode.ERROR, str(error))
            span.end()
        instruments = self._instruments
        if instruments is None:
            return
        attrs: dict[str, Any] = {**self._attrs, OUTCOME: outcome}
        if kind is not None:
            attrs[ERROR_TYPE] = kind
        instruments.duration.record(time.perf_counter() - self._started, attrs)
        if outcome == "completed":
            instruments.completed.add(1, self._attrs)
        elif outcome in ("failed", "retried"):
            counter = instruments.failed if outcome == "failed" else instruments.retried
            counter.add(1, {**self._attrs, ERROR_TYPE: kind} if kind is not None else self._attrs)
        if outcome in ("completed", "failed") and self._created_at is not None:
            instruments.latency.record(max(0, now_ms() - self._created_at) / 1000, self._attrs)


class OTelObserver:
    """Reports jobs to OpenTelemetry: the global providers, or the ones given (tests, several SDKs)."""

    _shared: OTelObserver | None = None

    def __init__(
        self, tracer_provider: APITracerProvider | None = None, meter_provider: MeterProvider | None = None
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._seen_tp: object = None
        self._tracer: Tracer | None = None
        self._seen_mp: object = None
        self._instruments: _Instruments | None = None
        self._recheck_at = 0.0

    @classmethod
    def shared(cls) -> OTelObserver:
        """The observer on the global providers (one per process)."""
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def _resolve(self) -> tuple[Tracer | None, _Instruments | None]:
        """The tracer and instruments to use now; None where no SDK is configured.

        The global providers are looked up again at most every second: an SDK
        set up after the queue was built is picked up, and a process without
        one pays a clock read per job instead of two provider look-ups.
        """
        now = time.monotonic()
        if now < self._recheck_at:
            return self._tracer, self._instruments
        tracer_provider = self._tracer_provider or trace.get_tracer_provider()
        if tracer_provider is not self._seen_tp:
            self._seen_tp = tracer_provider
            noop = isinstance(tracer_provider, ProxyTracerProvider | NoOpTracerProvider)
            self._tracer = None if noop else tracer_provider.get_tracer(_SCOPE, _version())
        meter_provider = self._meter_provider or metrics.get_meter_provider()
        if meter_provider is not self._seen_mp:
            self._seen_mp = meter_provider
            noop = _is_noop_meter_provider(meter_provider)
            self._instruments = None if noop else _instruments_of(meter_provider)
        self._recheck_at = now + _RECHECK_EVERY
        return self._tracer, self._instruments

    def send(self, queue: str, job_id: str | None, count: int) -> SendScope:
        """Start the ``send`` span of an enqueue and the headers that carry it."""
        tracer, instruments = self._resolve()
        if (
            tracer is None
            and instruments is None
            and not trace.get_current_span().get_span_context().is_valid
        ):
            return _NO_SCOPE
        return _SendScope(tracer, instruments, queue, job_id, count)

    def process(
        self, queue: str, job_id: str, attempt: int, headers: Mapping[str, str], created_at_ms: int | None
    ) -> ProcessScope:
        """Start the ``process`` span of one attempt, a child of the producer's context."""
        tracer, instruments = self._resolve()
        if tracer is None and instruments is None:
            return _NO_SCOPE
        return _ProcessScope(tracer, instruments, queue, job_id, attempt, headers, created_at_ms)

    def stalled(self, queue: str, count: int) -> None:
        """Count stalled-job recoveries."""
        _, instruments = self._resolve()
        if instruments is not None:
            instruments.stalled.add(count, {"messaging.system": SYSTEM, QUEUE: queue})

    def watch(self, storage: Storage) -> Callable[[], None]:
        """Report ``storage``'s counts per state on the depth gauge while the queue runs."""
        _, instruments = self._resolve()
        if instruments is None:
            return _nothing
        return instruments.add_source(_DepthSource(storage, asyncio.get_running_loop()))


def _nothing() -> None:
    pass


class _NoScope:
    """What a scope is when there is nothing to record."""

    __slots__ = ()
    headers = None

    def end(self, *_: object) -> None:
        pass


_NO_SCOPE = _NoScope()
