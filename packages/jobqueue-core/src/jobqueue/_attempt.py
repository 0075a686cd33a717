"""One attempt of one job: decode, run the handler, decide the outcome, store it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Generic, TypeVar

from ._config import QueueConfig
from ._contract import rules
from ._contract.codecs import Envelope, decode_envelope
from ._contract.records import Claim, Finish, Revoked
from ._contract.storage import Storage
from ._durations import from_ms
from ._emitter import Emitter
from ._errors import (
    CorruptDataError,
    JobCancelledError,
    JobQueueError,
    JobTimeoutError,
    SerializationError,
    StorageError,
)
from ._failure import ErrorCode, encode_error
from ._finisher import Finisher
from ._job import ExecutionContext, Job
from ._serde import dumps, loads
from ._telemetry import Outcome

__all__ = ["Attempt", "Handler", "StopReason"]

P = TypeVar("P")
R = TypeVar("R")

Handler = Callable[[Job[Any]], Awaitable[Any]] | Callable[[Job[Any]], Any]


class StopReason(Enum):
    """Why the worker interrupted a running handler."""

    ABORT = "abort"  # queue.abort(): the attempt fails, no retry
    LOST = "lost"  # the lease is gone (recovered as stalled): store nothing
    SHUTDOWN = "shutdown"  # stop() ran out of time: give the job back


@dataclass(eq=False, slots=True)
class Attempt(Generic[P, R]):
    """Runs one claimed job to a stored outcome. The consumer owns its task."""

    claim: Claim
    storage: Storage
    finisher: Finisher
    config: QueueConfig
    emitter: Emitter
    handler: Handler
    is_async: bool
    job: Job[P] | None = None
    job_timeout_ms: int | None = None
    stop_reason: StopReason | None = None
    outcome: Outcome = "lost"  # until an outcome is stored
    error: BaseException | None = None
    # The handler runs in the attempt's own task (one task per job; the consumer sets it): an
    # interrupt cancels that task while the handler is being awaited, and ``run`` takes the
    # cancellation back.
    task: asyncio.Task[Any] | None = field(default=None, repr=False)
    _in_handler: bool = field(default=False, repr=False)

    def interrupt(self, reason: StopReason) -> None:
        """Stop the handler (async handlers are cancelled; sync ones see ``job.aborted``)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.job is not None:
            self.job._abort()
        if self._in_handler and self.task is not None:
            self._in_handler = False
            self.task.cancel()

    async def run(self) -> None:
        """Run to a stored outcome; never raises (failures are stored, logged or emitted)."""
        observer = self.config.observer
        if observer is None:
            await self._run(None)
            return
        claim = self.claim
        try:
            envelope: Envelope | None = decode_envelope(claim.message)
        except CorruptDataError:
            envelope = None  # _run stores it as poison
        headers = envelope.headers if envelope is not None else {}
        created_at = envelope.created_at if envelope is not None else None
        scope = observer.process(self.storage.name, claim.id, claim.attempt, headers, created_at)
        try:
            await self._run(envelope)
        finally:
            scope.end(self.outcome, self.error)

    async def _run(self, envelope: Envelope | None) -> None:
        claim, config = self.claim, self.config
        try:
            if envelope is None:
                envelope = decode_envelope(claim.message)
            payload: P = loads(config.payload_serde, envelope.payload, "payload of job %r", claim.id)
        except (CorruptDataError, SerializationError) as exc:
            config.logger.error("job %r is unreadable (poison): %s", claim.id, exc)
            await self._store_failed(exc, ErrorCode.DECODE, config.result_ttl_ms)
            return
        if claim.attempt > envelope.max_attempts:  # recovered after stalls more often than allowed
            stalled = JobQueueError(f"job stalled on attempt {claim.attempt - 1} of {envelope.max_attempts}")
            await self._store_failed(stalled, ErrorCode.MAX_RETRIES, envelope.result_ttl)
            return
        self.job_timeout_ms = (
            envelope.job_timeout if envelope.job_timeout is not None else config.job_timeout_ms
        )
        self.job = job = Job(
            id=claim.id,
            payload=payload,
            attempt=claim.attempt,
            max_attempts=envelope.max_attempts,
            created_at=from_ms(envelope.created_at),
            worker_id=config.worker_id,
            _extend=self._extend_lease,
            _progress=self._report_progress,
        )
        self.emitter.emit("processing", claim.id, claim.attempt)
        started = datetime.now(UTC) if config.after_execution is not None else None
        result: Any = None
        error: BaseException | None = None
        if not self.is_async:
            job.aborted  # noqa: B018  # created here, not racing between the thread and the loop
        self._in_handler = True
        try:
            if self.job_timeout_ms is None:
                result = await self._invoke(job)
            else:
                result = await self._call_with_timeout(job, self.job_timeout_ms)
        except asyncio.CancelledError:
            if self.stop_reason is None or self.task is None:
                raise
            self.task.uncancel()
            error = JobCancelledError(claim.id, f"job {claim.id!r} was aborted while running")
        except Exception as exc:
            error = exc
        finally:
            self._in_handler = False
        if self.stop_reason is StopReason.LOST:
            config.logger.warning("job %r lost its lease while running; its outcome is discarded", claim.id)
            return
        if self.stop_reason is StopReason.SHUTDOWN:
            if await self._store(Finish.release(claim.id)):
                self.outcome = "requeued"
                self.emitter.emit("requeued", claim.id)
            return
        await self._finish(envelope, payload, started, result, error)

    async def _call_with_timeout(self, job: Job[P], timeout_ms: int) -> Any:
        timeout = asyncio.timeout(timeout_ms / 1000)
        try:
            async with timeout:
                return await self._invoke(job)
        except TimeoutError:
            if not timeout.expired():
                raise  # the handler's own TimeoutError, not ours
            if self.stop_reason is not None:
                raise asyncio.CancelledError from None
            job._abort()
            raise JobTimeoutError(
                f"job {job.id!r} exceeded job_timeout ({timeout_ms / 1000:g}s)", job_id=job.id
            ) from None

    def _invoke(self, job: Job[P]) -> Awaitable[Any]:
        if self.is_async:
            return self.handler(job)
        return asyncio.to_thread(self.handler, job)

    async def _finish(
        self,
        envelope: Envelope,
        payload: P,
        started: datetime | None,
        result: Any,
        error: BaseException | None,
    ) -> None:
        claim, config = self.claim, self.config
        retryable = error is not None and self.stop_reason is not StopReason.ABORT
        status = "completed" if error is None else "failing"
        if error is not None and not (retryable and claim.attempt < envelope.max_attempts):
            status = "failed"
        ttl_ms = envelope.result_ttl
        if started is not None:
            ctx = await self._after_execution(envelope, payload, started, status, result, error)
            if ctx is not None:
                result, error, ttl_ms = ctx.result, ctx.error, max(1, round(ctx.ttl * 1000))
        if error is None:
            try:
                body = dumps(config.result_serde, result, "result of job %r", claim.id)
            except SerializationError as exc:
                error, status = exc, "failing" if claim.attempt < envelope.max_attempts else "failed"
            else:
                if await self._store(Finish.complete(claim.id, body, ttl_ms)):
                    self.outcome = "completed"
                    self.emitter.emit("completed", claim.id, result)
                return
        if status == "failing":
            delay = max(0.0, float(config.retry_delay(claim.attempt)))
            data = encode_error(error, ErrorCode.HANDLER)
            self.error = error
            if await self._store(Finish.retry(claim.id, data, round(delay * 1000))):
                self.outcome = "retried"
                self.emitter.emit("failing", claim.id, error, claim.attempt, delay)
            return
        code = ErrorCode.HANDLER
        if self.stop_reason is StopReason.ABORT:
            code = ErrorCode.CANCELLED
        elif envelope.max_attempts > 1:
            code = ErrorCode.MAX_RETRIES
        elif isinstance(error, JobTimeoutError):
            code = ErrorCode.TIMEOUT
        await self._store_failed(error, code, ttl_ms)

    async def _after_execution(
        self,
        envelope: Envelope,
        payload: P,
        started: datetime,
        status: str,
        result: Any,
        error: BaseException | None,
    ) -> ExecutionContext[P] | None:
        """Run the hook; its context, or None when it raised (the outcome is then stored as it was)."""
        finished = datetime.now(UTC)
        ctx = ExecutionContext(
            id=self.claim.id,
            payload=payload,
            attempt=self.claim.attempt,
            max_attempts=envelope.max_attempts,
            status=status,  # type: ignore[arg-type]  # one of the three literals _finish chose
            result=result,
            error=error,
            ttl=envelope.result_ttl / 1000,
            worker_id=self.config.worker_id,
            started_at=started,
            finished_at=finished,
            duration=(finished - started).total_seconds(),
        )
        hook = self.config.after_execution
        assert hook is not None
        try:
            outcome = hook(ctx)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:
            self.config.logger.exception("after_execution hook raised for job %r", ctx.id)
            self.emitter.emit("error", exc)
            return None
        return ctx

    async def _store_failed(self, error: BaseException, code: str, ttl_ms: int) -> None:
        data = encode_error(error, code)
        self.error = error
        if await self._store(Finish.fail(self.claim.id, data, ttl_ms)):
            self.outcome = "failed"
            self.emitter.emit("failed", self.claim.id, error)

    async def _store(self, outcome: Finish) -> bool:
        """Store an outcome, retrying storage failures for up to one visibility timeout.

        Past that the lease has expired anyway and the reaper will run the job again.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.visibility_timeout_ms / 1000
        delay = 0.05
        while True:
            try:
                stored = await self.finisher.finish(outcome)
            except StorageError as exc:
                if loop.time() + delay > deadline:
                    self.config.logger.error("could not store the outcome of job %r: %s", self.claim.id, exc)
                    self.emitter.emit("error", exc)
                    return False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if not stored:
                self.config.logger.warning(
                    "job %r: outcome not stored, this worker no longer owns it (lease lost)", self.claim.id
                )
            return stored

    async def _extend_lease(self, seconds: float) -> bool:
        lease_ms = max(1, round(seconds * 1000))
        revoked = await self.storage.renew_leases(self.config.worker_id, [self.claim.id], lease_ms)
        return revoked.get(self.claim.id) is not Revoked.LOST

    async def _report_progress(self, value: Any) -> bool:
        try:
            data = dumps(self.config.result_serde, value, "value")
        except SerializationError as exc:
            raise TypeError(f"report_progress: {exc}") from exc
        if len(data) > rules.INLINE_RESULT_LIMIT:
            raise ValueError(
                f"report_progress: value encodes to {len(data)} bytes; at most "
                f"{rules.INLINE_RESULT_LIMIT} (INLINE_RESULT_LIMIT) are allowed"
            )
        stored = await self.storage.set_progress(self.claim.id, self.config.worker_id, data)
        if stored:
            self.emitter.emit("progress", self.claim.id, value)
        return stored
