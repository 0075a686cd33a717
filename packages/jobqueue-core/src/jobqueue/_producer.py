"""The producing half of a ``Queue``: enqueue, wait, cancel, abort, inspect."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Generic, TypeVar, Unpack

from ._coalescer import EnqueueCoalescer
from ._config import QueueConfig, validate_attempts
from ._contract import rules
from ._contract.capabilities import TransactionalEnqueue
from ._contract.checks import check_priority
from ._contract.codecs import pack_envelope
from ._contract.records import EventKind, JobRecord, NewJob, StorageEvent
from ._contract.storage import Storage
from ._durations import Duration, from_ms, now_ms, to_ms, validate_job_id
from ._emitter import Emitter
from ._errors import JobCancelledError, JobNotFoundError, JobQueueError, JobTimeoutError
from ._failure import decode_error, error_to_exception
from ._serde import dumps, loads
from ._telemetry import SendScope
from ._types import CancelResult, EnqueueResult, JobOptions, JobState, JobStatus, UpdateTtlResult
from ._waiters import Outcome, Waiters

__all__ = ["Producer"]

P = TypeVar("P")
R = TypeVar("R")

_OPTION_NAMES = frozenset(JobOptions.__annotations__)


class Producer(Generic[P, R]):
    """Puts jobs in storage and reads their outcome; ``Queue`` is one.

    Every per-job option is declared once, in ``JobOptions``.
    """

    def __init__(self, storage: Storage, config: QueueConfig, emitter: Emitter) -> None:
        self.storage = storage
        self.config = config
        self._emitter = emitter
        self._waiters = Waiters(storage, config.logger)
        self._coalescer = EnqueueCoalescer(storage)
        self._accepting_waits = False

    async def _stop_producing(self) -> None:
        """Let enqueues already handed over get their answer, then stop the ``done`` listener (waits fail)."""
        await self._coalescer.drain()
        self._accepting_waits = False
        await self._waiters.stop()

    def _new_job(
        self, job_id: object, payload: P, options: JobOptions, headers: dict[str, str] | None = None
    ) -> NewJob:
        """Validate everything and build the job, before anything is written."""
        job_id = validate_job_id(job_id)
        if not _OPTION_NAMES.issuperset(options):
            unknown = sorted(set(options) - _OPTION_NAMES)
            raise TypeError(f"unknown job option(s): {', '.join(unknown)}")
        config = self.config
        max_attempts = options.get("max_attempts")
        attempts = config.max_attempts if max_attempts is None else validate_attempts(max_attempts)
        result_ttl = options.get("result_ttl")
        ttl_ms = config.result_ttl_ms if result_ttl is None else to_ms(result_ttl, "result_ttl")
        delay, run_at = options.get("delay"), options.get("run_at")
        delay_ms = 0 if delay is None else to_ms(delay, "delay", allow_zero=True)
        if run_at is not None:
            if delay is not None:
                raise ValueError("pass either delay or run_at, not both")
            if not isinstance(run_at, datetime) or run_at.tzinfo is None:
                raise ValueError("run_at must be a timezone-aware datetime")
            delay_ms = max(0, int((run_at - datetime.now(UTC)).total_seconds() * 1000))
        job_timeout = options.get("job_timeout")
        timeout_ms = None if job_timeout is None else to_ms(job_timeout, "job_timeout")
        priority = check_priority(options.get("priority", 0))
        body = dumps(config.payload_serde, payload, "payload of job %r", job_id)
        message = pack_envelope(body, now_ms(), attempts, ttl_ms, timeout_ms, headers)
        # every field is checked above: check_new_job would only repeat it
        return NewJob(job_id, message, delay_ms, priority)

    async def enqueue(
        self, job_id: str, payload: P, *, connection: object = None, **options: Unpack[JobOptions]
    ) -> EnqueueResult[R]:
        """Add a job unless one with this id exists (see the dedup table in the README).

        Concurrent calls share storage round trips: those made while another
        is in flight go out in batches, as ``enqueue_many`` would send them
        (two calls in flight at most, in arrival order); each caller still
        gets its own result or error.

        ``connection``: the application's own database connection (asyncpg on
        ``PostgresStorage``): the job is written in its current transaction and
        exists if and only if that transaction commits.

        Raises:
            ValueError, TypeError: a bad id, payload or option, before anything is written;
                a ``connection`` on a storage without ``TransactionalEnqueue``.
        """
        job, scope = self._new_sent_job(job_id, payload, options)
        return (await self._submit([job], scope, connection))[0]

    async def enqueue_many(
        self, jobs: Iterable[tuple[str, P]], *, connection: object = None, **options: Unpack[JobOptions]
    ) -> list[EnqueueResult[R]]:
        """Add many jobs in one storage call; results in order, dedup per id (within the batch too).

        ``connection``: as for ``enqueue``, every job of the batch in that transaction.

        Raises:
            ValueError: an empty batch, more than 1,000 jobs, or a bad id, payload or option.
        """
        pairs = list(jobs)
        if not pairs:
            raise ValueError("enqueue_many needs at least one (job_id, payload) pair")
        if len(pairs) > rules.MAX_BATCH:
            raise ValueError(f"enqueue_many takes at most {rules.MAX_BATCH} jobs per call, got {len(pairs)}")
        scope = self._send_scope(len(pairs))
        try:
            headers = None if scope is None else scope.headers
            batch = [self._new_job(job_id, payload, options, headers) for job_id, payload in pairs]
        except BaseException as exc:
            _end(scope, None, exc)
            raise
        return await self._submit(batch, scope, connection)

    def _new_sent_job(
        self, job_id: object, payload: P, options: JobOptions
    ) -> tuple[NewJob, SendScope | None]:
        """One checked job and its ``send`` span (ended here when the job is refused)."""
        scope = self._send_scope(1, job_id)
        try:
            return self._new_job(job_id, payload, options, None if scope is None else scope.headers), scope
        except BaseException as exc:
            _end(scope, None, exc)
            raise

    def _send_scope(self, count: int, job_id: object = None) -> SendScope | None:
        observer = self.config.observer
        if observer is None:
            return None
        return observer.send(self.storage.name, job_id if isinstance(job_id, str) else None, count)

    async def _submit(
        self, jobs: list[NewJob], scope: SendScope | None, connection: object = None
    ) -> list[EnqueueResult[R]]:
        try:
            # the protected primitives: _new_job checked every job, the public checks would repeat
            if connection is None and len(jobs) == 1:
                outcomes = [await self._coalescer.enqueue(jobs[0])]
            elif connection is None:
                outcomes = await self.storage._enqueue(jobs)
            elif isinstance(self.storage, TransactionalEnqueue):
                outcomes = await self.storage.enqueue_many_on(connection, jobs)
            else:
                raise TypeError(
                    f"connection= needs a storage with the transactional_enqueue capability; "
                    f"{type(self.storage).__name__} does not offer it"
                )
        except BaseException as exc:
            _end(scope, None, exc)
            raise
        _end(scope, [outcome.accepted for outcome in outcomes], None)
        results: list[EnqueueResult[R]] = []
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome.accepted:
                self._emitter.emit("enqueued", job.id)
                results.append(EnqueueResult("queued", job.id))
                continue
            existing = outcome.existing
            assert existing is not None
            if existing.state is JobState.COMPLETED:
                results.append(
                    EnqueueResult("completed", job.id, JobState.COMPLETED, self._result_of(existing))
                )
            else:
                results.append(EnqueueResult("duplicate", job.id, existing.state))
        return results

    async def enqueue_and_wait(
        self, job_id: str, payload: P, *, timeout: Duration = 30.0, **options: Unpack[JobOptions]
    ) -> R:
        """Enqueue (or join the existing job) and return its result.

        Raises:
            JobFailedError: the job failed (``MaxRetriesError`` when it used every attempt).
            JobCancelledError: the job was cancelled before it ran.
            JobTimeoutError: no outcome within ``timeout`` seconds (the job goes on).
            JobQueueError: the queue is not started.
        """
        timeout_s = self._check_wait(timeout)
        job, scope = self._new_sent_job(job_id, payload, options)
        return await self._wait_for(job.id, timeout_s, job, scope)

    async def wait(self, job_id: str, *, timeout: Duration = 30.0) -> R:
        """Wait for the outcome of an existing job, without resending it.

        Raises:
            JobNotFoundError: no job with this id (never enqueued, cancelled or expired).
            JobFailedError, JobCancelledError, JobTimeoutError: as ``enqueue_and_wait``.
        """
        timeout_s = self._check_wait(timeout)
        return await self._wait_for(validate_job_id(job_id), timeout_s, None)

    def _check_wait(self, timeout: Duration) -> float:
        if not self._accepting_waits:
            raise JobQueueError("waiting needs a started queue: use `async with queue:`")
        return to_ms(timeout, "timeout") / 1000

    async def _wait_for(
        self, job_id: str, timeout_s: float, job: NewJob | None, scope: SendScope | None = None
    ) -> R:
        try:
            await self._waiters.start()
        except BaseException as exc:
            _end(scope, None, exc)
            raise
        future = self._waiters.register(job_id)  # subscribe before enqueue: no outcome can slip by
        try:
            if job is not None:
                result = (await self._submit([job], scope))[0]
                if result.status == "completed":
                    return result.result  # type: ignore[return-value]  # R is whatever the serde returns
                state = JobState.QUEUED if result.status == "queued" else result.existing_state
            else:
                record = await self.storage.get(job_id)
                if record is None:
                    raise JobNotFoundError(job_id)
                if record.state.is_terminal:
                    return await self._outcome_value(job_id, record)
                state = record.state
            if state is JobState.FAILED:
                record = await self.storage.get(job_id)
                if record is not None and record.state is JobState.FAILED:
                    raise error_to_exception(job_id, decode_error(record.error))
            self._waiters.arm(job_id)
            try:
                async with asyncio.timeout(timeout_s):
                    outcome = await asyncio.shield(future)
            except TimeoutError:
                raise JobTimeoutError(
                    f"job {job_id!r} did not finish within {timeout_s:g}s", job_id=job_id
                ) from None
            return await self._outcome_value(job_id, outcome)
        finally:
            self._waiters.unregister(job_id, future)

    async def _outcome_value(self, job_id: str, outcome: Outcome) -> R:
        if outcome is None:
            raise JobNotFoundError(
                job_id,
                f"job {job_id!r} is gone: it was cancelled, or it finished and its result expired "
                "before it could be read",
            )
        if isinstance(outcome, StorageEvent):
            if outcome.kind is EventKind.CANCELLED:
                raise JobCancelledError(job_id)
            data = outcome.data
            if data is None:  # too large to ride along: fetch it
                record = await self.storage.get(job_id)
                if record is None:
                    raise JobQueueError(f"job {job_id!r} finished but its record expired before it was read")
                return await self._outcome_value(job_id, record)
            if outcome.kind is EventKind.FAILED:
                raise error_to_exception(job_id, decode_error(data))
            value: R = loads(self.config.result_serde, data, f"result of job {job_id!r}")
            return value
        if outcome.state is JobState.FAILED:
            raise error_to_exception(job_id, decode_error(outcome.error))
        return self._result_of(outcome)

    def _result_of(self, record: JobRecord) -> R:
        if record.result is None:
            raise JobQueueError(f"job {record.id!r} is completed but has no stored result")
        value: R = loads(self.config.result_serde, record.result, f"result of job {record.id!r}")
        return value

    async def cancel(self, job_id: str) -> CancelResult:
        """Cancel a job that has not started (see the README's cancel table)."""
        prior = await self.storage.cancel(validate_job_id(job_id))
        return self._cancel_result(job_id, prior)

    async def abort(self, job_id: str) -> CancelResult:
        """Cancel a queued job, or stop a running one: its attempt fails with ``JobCancelledError``.

        Returns ``"processing"`` when a running job was told to stop.
        """
        prior = await self.storage.request_abort(validate_job_id(job_id))
        return self._cancel_result(job_id, prior)

    def _cancel_result(self, job_id: str, prior: JobState | None) -> CancelResult:
        if prior is None:
            return "not_found"
        if prior is JobState.PROCESSING:
            return "processing"
        if prior is JobState.COMPLETED:
            return "completed"
        self._emitter.emit("cancelled", job_id)
        return "cancelled"

    async def get_status(self, job_id: str) -> JobStatus[R] | None:
        """The job's state, attempts, and result or error; None when there is no such job."""
        record = await self.storage.get(validate_job_id(job_id))
        if record is None:
            return None
        result = self._result_of(record) if record.state is JobState.COMPLETED else None
        has_error = record.state in (JobState.FAILED, JobState.FAILING)
        error = decode_error(record.error) if has_error and record.error is not None else None
        progress = None
        if record.progress is not None:
            progress = loads(self.config.result_serde, record.progress, f"progress of job {job_id!r}")
        return JobStatus(
            job_id, record.state, from_ms(record.created_at), record.attempts, result, error, progress
        )

    async def get_result(self, job_id: str) -> R | None:
        """The result of a completed job, else None."""
        record = await self.storage.get(validate_job_id(job_id))
        if record is None or record.state is not JobState.COMPLETED:
            return None
        return self._result_of(record)

    async def update_result_ttl(self, job_id: str, ttl: Duration) -> UpdateTtlResult:
        """Make a finished job's result (or error) live ``ttl`` seconds from now."""
        ttl_ms = to_ms(ttl, "ttl")
        record = await self.storage.get(validate_job_id(job_id))
        if record is not None and record.state is JobState.COMPLETED and record.result is None:
            return "missing_payload"
        return await self.storage.update_ttl(job_id, ttl_ms)


def _end(scope: SendScope | None, accepted: list[bool] | None, error: BaseException | None) -> None:
    if scope is not None:
        scope.end(accepted, error)
