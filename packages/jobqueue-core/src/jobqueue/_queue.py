"""``Queue``: the public face of jobqueue, a producer and (with a handler) a consumer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from ._attempt import Handler
from ._backoff import RetryBackoff
from ._config import AfterExecution, QueueConfig
from ._consumer import Consumer
from ._durations import Duration, to_ms
from ._emitter import Emitter, Unsubscribe
from ._errors import JobQueueError
from ._producer import Producer
from ._serde import JsonSerde, Serde
from ._contract.storage import Storage
from ._types import CancelResult, EnqueueResult, JobStatus, UpdateTtlResult

__all__ = ["QUEUE_EVENTS", "Queue"]

P = TypeVar("P")
R = TypeVar("R")
H = TypeVar("H", bound=Callable[..., Any])

QUEUE_EVENTS = frozenset(
    {"started", "stopped", "enqueued", "processing", "completed", "failing", "failed", "requeued",
     "cancelled", "error"}
)  # fmt: skip


class Queue(Generic[P, R]):
    """A job queue on a storage: enqueue jobs, and run them when a handler is set.

    ``P`` is the payload type, ``R`` the result type. Durations are seconds
    (``float`` or ``timedelta``). See the README for every option.
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
    ) -> None:
        if not isinstance(storage, Storage):
            raise TypeError(f"storage must be a jobqueue.Storage, not {type(storage).__name__}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError("name must be a non-empty str (or None for the storage's namespace)")
        self.config = QueueConfig.build(
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
        )
        self.storage = storage.namespace(name) if name is not None else storage
        self._emitter = Emitter(QUEUE_EVENTS, self.config.logger)
        self._producer: Producer[P, R] = Producer(self.storage, self.config, self._emitter)
        self._handler: Handler | None = None
        self._consumer: Consumer | None = None
        self._started = False

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

    def on(self, event: str, callback: Callable[..., Any]) -> Unsubscribe:
        """Call ``callback`` on ``event`` (see the README's event table); returns an unsubscribe function."""
        return self._emitter.on(event, callback)

    async def start(self) -> None:
        """Connect the storage and, when a handler is set, start consuming."""
        if self._started:
            return
        await self.storage.connect()
        try:
            if self._handler is not None:
                consumer = Consumer(self.storage, self.config, self._emitter, self._handler)
                await consumer.start()
                self._consumer = consumer
        except BaseException:
            await self.storage.disconnect()
            raise
        self._started = True
        self._producer.running = True
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
            await self._producer.stop()
            if self._consumer is not None:
                await self._consumer.stop(drain)
                self._consumer = None
        finally:
            await self.storage.disconnect()
            self._emitter.emit("stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def enqueue(
        self,
        job_id: str,
        payload: P,
        *,
        max_attempts: int | None = None,
        result_ttl: Duration | None = None,
        delay: Duration | None = None,
        run_at: datetime | None = None,
    ) -> EnqueueResult[R]:
        """Add a job unless one with this id exists; see ``EnqueueResult`` and the dedup table."""
        return await self._producer.enqueue(
            job_id, payload, max_attempts=max_attempts, result_ttl=result_ttl, delay=delay, run_at=run_at
        )

    async def enqueue_and_wait(
        self,
        job_id: str,
        payload: P,
        *,
        timeout: Duration = 30.0,
        max_attempts: int | None = None,
        result_ttl: Duration | None = None,
        delay: Duration | None = None,
        run_at: datetime | None = None,
    ) -> R:
        """Enqueue (or join the existing job) and wait for its result.

        Raises:
            JobFailedError: the job failed (``MaxRetriesError`` after its last attempt).
            JobCancelledError: the job was cancelled before it ran.
            JobTimeoutError: no outcome within ``timeout`` seconds; the job goes on.
            JobQueueError: the queue is not started.
        """
        return await self._producer.enqueue_and_wait(
            job_id,
            payload,
            timeout=timeout,
            max_attempts=max_attempts,
            result_ttl=result_ttl,
            delay=delay,
            run_at=run_at,
        )

    async def cancel(self, job_id: str) -> CancelResult:
        """Cancel a job that has not started."""
        return await self._producer.cancel(job_id)

    async def abort(self, job_id: str) -> CancelResult:
        """Cancel a queued job, or stop a running one (``"processing"``: it was told to stop)."""
        return await self._producer.abort(job_id)

    async def get_status(self, job_id: str) -> JobStatus[R] | None:
        """The job's state, attempts, and result or error; None when unknown."""
        return await self._producer.get_status(job_id)

    async def get_result(self, job_id: str) -> R | None:
        """The result of a completed job, else None."""
        return await self._producer.get_result(job_id)

    async def update_result_ttl(self, job_id: str, ttl: Duration) -> UpdateTtlResult:
        """Make a finished job's result or error live ``ttl`` seconds from now."""
        return await self._producer.update_result_ttl(job_id, ttl)

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<Queue {self.name!r} {state} worker={self.worker_id!r}>"
