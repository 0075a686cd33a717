"""``Queue``: the public face of jobqueue, a producer and (with a handler) a consumer."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, overload

from ._attempt import Handler
from ._backoff import RetryBackoff
from ._config import AfterExecution, QueueConfig
from ._consumer import Consumer
from ._contract.capabilities import Monitoring
from ._contract.storage import Storage
from ._durations import Duration, to_ms
from ._emitter import Emitter, Unsubscribe
from ._errors import JobQueueError, SerializationError
from ._producer import Producer
from ._schedule import Schedule, Scheduler, build_schedule
from ._serde import JsonSerde, Serde, dumps

__all__ = ["QUEUE_EVENTS", "Queue"]

P = TypeVar("P")
R = TypeVar("R")
H = TypeVar("H", bound=Callable[..., Any])

QUEUE_EVENTS = frozenset(
    {"started", "stopped", "enqueued", "processing", "progress", "completed", "failing", "failed",
     "requeued", "cancelled", "error"}
)  # fmt: skip


class Queue(Producer[P, R]):
    """A job queue on a storage: enqueue jobs, and run them when a handler is set.

    ``P`` is the payload type, ``R`` the result type. Durations are seconds
    (``float`` or ``timedelta``). See the README for every option. The
    producing methods (``enqueue``, ``enqueue_many``, ``enqueue_and_wait``,
    ``wait``, ``cancel``, ``abort``, ``get_status``, ``get_result``,
    ``update_result_ttl``) come from ``Producer``.

    With ``jobqueue-core[otel]`` installed, the queue reports traces and
    metrics to OpenTelemetry; ``instrument=False`` switches that off.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        name: str | None = None,
        concurrency: int = 1,
        worker_id: str | None = None,
        max_attempts: int = 3,
        retry_backoff: RetryBackoff = 1.0,
        block_timeout: Duration = 5.0,
        visibility_timeout: Duration = 30.0,
        job_timeout: Duration | None = None,
        result_ttl: Duration = 3600.0,
        payload_serde: Serde[Any] | None = None,
        result_serde: Serde[Any] | None = None,
        after_execution: AfterExecution | None = None,
        logger: Any = None,
        instrument: bool = True,
    ) -> None:
        if not isinstance(storage, Storage):
            raise TypeError(f"storage must be a jobqueue.Storage, not {type(storage).__name__}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError("name must be a non-empty str (or None for the storage's namespace)")
        config = QueueConfig.build(
            concurrency=concurrency,
            worker_id=worker_id,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
            block_timeout=block_timeout,
            visibility_timeout=visibility_timeout,
            job_timeout=job_timeout,
            result_ttl=result_ttl,
            payload_serde=payload_serde or JsonSerde(),
            result_serde=result_serde or JsonSerde(),
            after_execution=after_execution,
            logger=logger,
            instrument=instrument,
        )
        storage = storage.namespace(name) if name is not None else storage
        super().__init__(storage, config, Emitter(QUEUE_EVENTS, config.logger))
        self._handler: Handler | None = None
        self._consumer: Consumer | None = None
        self._schedules: list[Schedule] = []
        self._started = False
        self._unwatch: Callable[[], None] | None = None

    @property
    def name(self) -> str:
        """The namespace this queue lives in."""
        return self.storage.name

    @property
    def worker_id(self) -> str:
        """The worker id of this queue's consumer."""
        return self.config.worker_id

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._started

    def execute(self, handler: H) -> H:
        """Set the handler (``async def`` or plain ``def``, run in a thread). Usable as a decorator."""
        if self._handler is not None:
            raise ValueError("a handler is already set: execute() may be called once per queue")
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        if self._started:
            raise JobQueueError("set the handler before starting the queue")
        self._handler = handler
        return handler

    def schedule(
        self,
        name: str,
        *,
        cron: str | None = None,
        every: Duration | None = None,
        payload: P | None = None,
        timezone: str = "UTC",
        catch_up: bool = False,
    ) -> None:
        """Run the handler periodically with ``payload``: once per tick, however many workers run it.

        Give exactly one of ``cron`` (5 fields, or 6 with seconds first,
        evaluated in ``timezone``) and ``every`` (seconds or a timedelta; ticks
        are multiples of it since the epoch, so every process agrees). Each
        tick is the job ``schedule:<name>:<tick epoch ms>``; the storage's
        dedup makes it run once. Ticks missed while no worker ran are skipped;
        with ``catch_up=True`` a starting worker runs the latest missed one.
        Call it before ``start()``, on a queue with a handler.

        Raises:
            ValueError, TypeError: a bad name, cron expression, interval,
                timezone or payload, or both or neither of ``cron`` and ``every``.
            JobQueueError: no handler is set, or the queue is running.
        """
        spec = build_schedule(
            name, cron=cron, every=every, payload=payload, timezone=timezone, catch_up=catch_up
        )
        if any(existing.name == spec.name for existing in self._schedules):
            raise ValueError(f"name: a schedule named {spec.name!r} already exists on this queue")
        try:
            dumps(self.config.payload_serde, payload, f"payload of schedule {spec.name!r}")
        except SerializationError as exc:
            raise TypeError(f"payload: {exc}") from exc
        if self._handler is None:
            raise JobQueueError("set a handler with execute() before schedule(): schedules run it")
        if self._started:
            raise JobQueueError("call schedule() before start()")
        self._schedules.append(spec)

    async def _submit_ticks(self, spec: Schedule, ticks: list[int]) -> None:
        ttl_ms = max(self.config.result_ttl_ms, spec.result_ttl_ms)
        jobs = [(spec.job_id(tick), spec.payload) for tick in ticks]
        await self.enqueue_many(jobs, result_ttl=ttl_ms / 1000)

    @overload
    def on(self, event: Literal["started", "stopped"], callback: Callable[[], object]) -> Unsubscribe: ...
    @overload
    def on(
        self, event: Literal["enqueued", "requeued", "cancelled"], callback: Callable[[str], object]
    ) -> Unsubscribe: ...
    @overload
    def on(self, event: Literal["processing"], callback: Callable[[str, int], object]) -> Unsubscribe: ...
    @overload
    def on(self, event: Literal["progress"], callback: Callable[[str, Any], object]) -> Unsubscribe: ...
    @overload
    def on(self, event: Literal["completed"], callback: Callable[[str, R], object]) -> Unsubscribe: ...
    @overload
    def on(
        self, event: Literal["failing"], callback: Callable[[str, BaseException, int, float], object]
    ) -> Unsubscribe: ...
    @overload
    def on(
        self, event: Literal["failed"], callback: Callable[[str, BaseException], object]
    ) -> Unsubscribe: ...
    @overload
    def on(self, event: Literal["error"], callback: Callable[[BaseException], object]) -> Unsubscribe: ...
    def on(self, event: str, callback: Callable[..., object]) -> Unsubscribe:
        """Call ``callback`` on ``event`` (see the README's event table); returns an unsubscribe function.

        Each event name has a typed signature: ``completed(job_id, result)``,
        ``failing(job_id, error, attempt, delay_seconds)``, ``processing(job_id, attempt)``...
        Raises ``ValueError`` for an unknown name.
        """
        return self._emitter.on(event, callback)

    async def start(self) -> None:
        """Connect the storage and, when a handler is set, start consuming."""
        if self._started:
            return
        await self.storage.connect()
        try:
            observer = self.config.observer
            if observer is not None and isinstance(self.storage, Monitoring):
                self._unwatch = observer.watch(self.storage)
            if self._handler is not None:
                scheduler = None
                if self._schedules:
                    scheduler = Scheduler(self._schedules, self._submit_ticks, self.config.logger)
                consumer = Consumer(self.storage, self.config, self._emitter, self._handler, scheduler)
                await consumer.start()
                self._consumer = consumer
        except BaseException:
            self._stop_watching()
            await self.storage.disconnect()
            raise
        self._started = True
        self._accepting_waits = True
        self._emitter.emit("started")

    async def stop(self, timeout: Duration | None = None) -> None:
        """Stop gracefully: no new claims, running jobs get time to finish.

        Running jobs get ``timeout`` seconds (default: the visibility timeout),
        then are interrupted and requeued.
        """
        drain = self.config.visibility_timeout_ms / 1000
        if timeout is not None:
            drain = to_ms(timeout, "timeout", allow_zero=True) / 1000
        if not self._started:
            return
        self._started = False
        try:
            await self._stop_producing()
            if self._consumer is not None:
                await self._consumer.stop(drain)
                self._consumer = None
        finally:
            self._stop_watching()
            await self.storage.disconnect()
            self._emitter.emit("stopped")

    def _stop_watching(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<Queue {self.name!r} {state} worker={self.worker_id!r}>"
