"""The storage contract (v2): a small set of primitives, and capabilities on top.

Storage stores; the core decides. ``Storage`` is the base class a backend
subclasses. Its public methods check their arguments once and call the
protected primitives (``_enqueue``, ``_claim``, ``_finish`` ...) that each
backend writes: 15 abstract members in all. How a record changes is decided
by the pure functions of ``rules``; a backend applies them (memory, files) or
mirrors them server-side (Lua, SQL) with a comment naming the function.

Optional capabilities are mixins, declared by subclassing, never probed:

- ``Monitoring``: counts, job listing, namespaces, workers, purge, retry of failed jobs;
- ``LeaderLock``: a lock with an owner and a TTL, for leader election;
- ``ControlChannel``: abort requests are also pushed on ``Channel.CONTROL``
  (without it a worker sees an abort at its next heartbeat);
- ``Migrations``: a versioned schema (``jobqueue migrate``);
- ``TransactionalEnqueue``: enqueue inside the application's own transaction.

``capabilities(storage)`` names what a storage offers.

A ``Storage`` instance is bound to one namespace (``name``). ``namespace(n)``
returns a view on another namespace that shares the same connections;
``connect``/``disconnect`` are idempotent and ref-counted across views.
Every method may raise ``StorageError``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

from .._durations import validate_job_id
from .._types import JobState
from . import rules
from .records import (
    Channel,
    Claim,
    EnqueueOutcome,
    Finish,
    FinishKind,
    JobPage,
    JobRecord,
    NewJob,
    Recovery,
    Revoked,
    StorageEvent,
    TtlOutcome,
    WorkerRecord,
)

__all__ = [
    "Capability",
    "ControlChannel",
    "LeaderLock",
    "Migrations",
    "Monitoring",
    "Storage",
    "TransactionalEnqueue",
    "capabilities",
    "check_ms",
    "check_new_job",
]


def check_ms(value: object, name: str, minimum: int = 0) -> int:
    """Check a duration in integer milliseconds.

    Raises:
        TypeError: not an int.
        ValueError: below ``minimum``.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int (milliseconds), not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_ids(job_ids: Iterable[str]) -> list[str]:
    if isinstance(job_ids, str | bytes):
        raise TypeError("job_ids must be a sequence of ids, not a single str")
    return [validate_job_id(job_id) for job_id in job_ids]


def _check_worker(worker_id: object) -> str:
    if not isinstance(worker_id, str) or not worker_id:
        raise ValueError(f"worker_id must be a non-empty str, got {worker_id!r}")
    return worker_id


def _check_batch(items: Sequence[object], name: str) -> None:
    if not items:
        raise ValueError(f"{name} must not be empty")
    if len(items) > rules.MAX_BATCH:
        raise ValueError(f"{name} holds {len(items)} items; at most {rules.MAX_BATCH} per call")


def check_new_job(job: NewJob) -> NewJob:
    """Check one job to enqueue (id, message bytes, delay, priority)."""
    if not isinstance(job, NewJob):
        raise TypeError(f"expected a NewJob, not {type(job).__name__}")
    validate_job_id(job.id)
    if not isinstance(job.message, bytes):
        raise TypeError(f"message must be bytes, not {type(job.message).__name__}")
    check_ms(job.delay_ms, "delay_ms")
    if isinstance(job.priority, bool) or not isinstance(job.priority, int):
        raise TypeError(f"priority must be an int, not {type(job.priority).__name__}")
    if not rules.PRIORITY_MIN <= job.priority <= rules.PRIORITY_MAX:
        raise ValueError(
            f"priority must be between {rules.PRIORITY_MIN} and {rules.PRIORITY_MAX}, got {job.priority}"
        )
    return job


def _check_finish(outcome: Finish) -> Finish:
    if not isinstance(outcome, Finish):
        raise TypeError(f"expected a Finish, not {type(outcome).__name__}")
    validate_job_id(outcome.job_id)
    kind = FinishKind(outcome.kind)
    if kind is not FinishKind.RELEASE and not isinstance(outcome.data, bytes):
        raise TypeError(f"{kind.value} needs bytes data, not {type(outcome.data).__name__}")
    if kind is FinishKind.RETRY:
        check_ms(outcome.ms, "delay_ms")
    elif kind is not FinishKind.RELEASE:
        check_ms(outcome.ms, "ttl_ms", 1)
    return outcome


class Storage(abc.ABC):
    """Abstract base class of job storages: public methods check, primitives store.

    A backend writes the abstract members below; everything else here is
    the contract's public face, used by the core, tools and tests.
    """

    # ---------------------------------------------------------------- lifecycle

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The namespace this instance is bound to."""

    def namespace(self, name: str) -> Self:
        """Return a view on namespace ``name`` sharing this storage's connections.

        Namespaces are isolated: jobs, events, workers and locks of one are
        invisible to another.

        Raises:
            ValueError: ``name`` is not a non-empty str (or the backend refuses it).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"namespace name must be a non-empty str, got {name!r}")
        return self._view(name)

    @abc.abstractmethod
    def _view(self, name: str) -> Self:
        """A view on namespace ``name`` sharing this storage's connections (name already checked)."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open connections. Idempotent; each call must be paired with ``disconnect``."""

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Release one ``connect``; the last release closes the connections."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    # -------------------------------------------------------------------- queue

    async def enqueue(
        self, job_id: str, message: bytes, *, delay_ms: int = 0, priority: int = 0
    ) -> EnqueueOutcome:
        """Store a new job unless one with this id is live, atomically (see ``_enqueue``)."""
        (outcome,) = await self.enqueue_many([NewJob(job_id, message, delay_ms, priority)])
        return outcome

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        """``enqueue`` for up to ``rules.MAX_BATCH`` jobs in one call; outcomes in order.

        Raises:
            ValueError: an empty batch, a batch over the limit, or a bad job.
        """
        jobs = list(jobs)
        _check_batch(jobs, "jobs")
        for job in jobs:
            check_new_job(job)
        return await self._enqueue(jobs)

    @abc.abstractmethod
    async def _enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        """Store each job unless one with its id is live; one outcome per job, in order.

        Per job, atomically: with no live record, store ``rules.new_record``
        (queued at the tail, or scheduled ``delay_ms`` from now) and publish
        ``enqueued``; with a live record change nothing and return it. A later
        job of the batch with the id of an earlier accepted one is a duplicate
        of it. Of many concurrent calls with one id exactly one is accepted.
        """

    async def dequeue(self, worker_id: str, *, lease_ms: int, timeout_ms: int, limit: int = 1) -> list[Claim]:
        """Claim up to ``limit`` ready jobs for ``worker_id`` (see ``_claim``)."""
        _check_worker(worker_id)
        check_ms(lease_ms, "lease_ms", 1)
        check_ms(timeout_ms, "timeout_ms")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, got {limit!r}")
        return await self._claim(worker_id, lease_ms, min(limit, rules.MAX_BATCH), timeout_ms)

    @abc.abstractmethod
    async def _claim(self, worker_id: str, lease_ms: int, limit: int, timeout_ms: int) -> list[Claim]:
        """Claim up to ``limit`` ready jobs, highest priority first, then oldest first.

        Due scheduled jobs and retries become ready first (``rules.promote``).
        Each claim applies ``rules.claim`` atomically and publishes
        ``processing``; a cancelled job is never claimed. With nothing ready,
        waits up to ``timeout_ms`` (0: do not wait), waking as soon as a job is
        enqueued or falls due; returns ``[]`` on timeout.
        """

    async def complete(self, job_id: str, worker_id: str, result: bytes, ttl_ms: int) -> bool:
        """Store the result: ``completed`` for ``ttl_ms`` (False: the worker lost the job)."""
        return (await self.finish_many(worker_id, [Finish.complete(job_id, result, ttl_ms)]))[0]

    async def fail(self, job_id: str, worker_id: str, error: bytes, ttl_ms: int) -> bool:
        """Store the error: ``failed`` for ``ttl_ms`` (False: the worker lost the job)."""
        return (await self.finish_many(worker_id, [Finish.fail(job_id, error, ttl_ms)]))[0]

    async def retry(self, job_id: str, worker_id: str, error: bytes, delay_ms: int) -> bool:
        """Store the error: ``failing``, due again after ``delay_ms`` (False: the worker lost the job)."""
        return (await self.finish_many(worker_id, [Finish.retry(job_id, error, delay_ms)]))[0]

    async def release(self, job_id: str, worker_id: str) -> bool:
        """Give a claimed job back to the head of the queue, its attempt not counted."""
        return (await self.finish_many(worker_id, [Finish.release(job_id)]))[0]

    async def finish_many(self, worker_id: str, outcomes: Sequence[Finish]) -> list[bool]:
        """End several attempts of one worker in one call; True for each one stored."""
        _check_worker(worker_id)
        outcomes = list(outcomes)
        _check_batch(outcomes, "outcomes")
        for outcome in outcomes:
            _check_finish(outcome)
        return await self._finish(worker_id, outcomes)

    @abc.abstractmethod
    async def _finish(self, worker_id: str, outcomes: Sequence[Finish]) -> list[bool]:
        """Apply ``rules.finish`` to each job the worker still owns (``rules.owned``).

        Atomic per job with the removal from the worker's holdings and the
        event (``completed``/``failed`` with ``rules.inline`` data,
        ``failing``, ``requeued``). A job the worker no longer owns is left
        alone and gets False.
        """

    async def heartbeat(
        self, worker_id: str, *, ttl_ms: int | None, job_ids: Sequence[str] = (), lease_ms: int = 0
    ) -> dict[str, Revoked]:
        """Refresh the worker's registration for ``ttl_ms`` and renew its jobs' leases; see ``_heartbeat``."""
        _check_worker(worker_id)
        if ttl_ms is not None:
            check_ms(ttl_ms, "ttl_ms", 1)
        ids = _check_ids(job_ids)
        if ids:
            check_ms(lease_ms, "lease_ms", 1)
        return await self._heartbeat(worker_id, ttl_ms, ids, lease_ms)

    async def register_worker(self, worker_id: str, ttl_ms: int) -> None:
        """Register a worker or refresh its heartbeat; it lapses after ``ttl_ms``."""
        await self.heartbeat(worker_id, ttl_ms=ttl_ms)

    async def renew_leases(self, worker_id: str, job_ids: Sequence[str], lease_ms: int) -> dict[str, Revoked]:
        """Extend leases to at least ``now + lease_ms``; return the jobs the worker must stop, and why."""
        return await self.heartbeat(worker_id, ttl_ms=None, job_ids=job_ids, lease_ms=lease_ms)

    @abc.abstractmethod
    async def _heartbeat(
        self, worker_id: str, ttl_ms: int | None, job_ids: Sequence[str], lease_ms: int
    ) -> dict[str, Revoked]:
        """One call for a worker's liveness.

        With ``ttl_ms``, register the worker (or refresh it) until ``now +
        ttl_ms``; a lapsed registration must disappear within ``ttl_ms``
        without anyone listing workers. For each of ``job_ids`` apply
        ``rules.renew`` (a lease only moves forward) and report the ids the
        worker must stop: ``LOST`` when no longer its own, ``ABORTED`` when an
        abort was requested.
        """

    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker's registration. Jobs it still holds stay recoverable."""
        await self._unregister_worker(_check_worker(worker_id))

    @abc.abstractmethod
    async def _unregister_worker(self, worker_id: str) -> None:
        """Remove the registration; the jobs the worker holds keep their leases."""

    async def set_progress(self, job_id: str, worker_id: str, data: bytes) -> bool:
        """Store a running job's progress value and publish ``progress``; False when not owned."""
        validate_job_id(job_id)
        _check_worker(worker_id)
        if not isinstance(data, bytes):
            raise TypeError(f"progress data must be bytes, not {type(data).__name__}")
        if len(data) > rules.INLINE_RESULT_LIMIT:
            raise ValueError(
                f"progress must encode to at most {rules.INLINE_RESULT_LIMIT} bytes, got {len(data)}"
            )
        return await self._set_progress(job_id, worker_id, data)

    @abc.abstractmethod
    async def _set_progress(self, job_id: str, worker_id: str, data: bytes) -> bool:
        """Apply ``rules.set_progress`` atomically and publish its ``progress`` event (with the data)."""

    async def cancel(self, job_id: str) -> JobState | None:
        """Cancel a job that has not started; return the state it had (None: no record)."""
        return await self._cancel(validate_job_id(job_id), abort=False)

    async def request_abort(self, job_id: str) -> JobState | None:
        """Stop a job wherever it is; return the state it had (None: no record)."""
        return await self._cancel(validate_job_id(job_id), abort=True)

    @abc.abstractmethod
    async def _cancel(self, job_id: str, *, abort: bool) -> JobState | None:
        """Apply ``rules.cancel`` atomically with respect to claims; return the prior state.

        ``queued``/``failing`` jobs are deleted (``cancelled`` published);
        ``failed`` ones are cleared by ``cancel``; with ``abort`` a
        ``processing`` job is flagged and ``abort`` published on ``control``.
        """

    async def recover_stalled(self) -> Recovery:
        """Put every job whose lease has expired back at the head of the queue (see ``_recover_stalled``)."""
        return await self._recover_stalled()

    @abc.abstractmethod
    async def _recover_stalled(self) -> Recovery:
        """Apply ``rules.recover`` to every job where ``rules.is_stalled``, oldest lease first.

        Atomic per job with respect to ``_finish``: a late finish of a
        recovered job returns False. Publishes ``stalled`` then ``requeued``
        for each. Returns them, with the ms until the earliest remaining lease
        expires (None: no job is processing). A storage that cannot expire
        records by itself may also delete expired ones here.
        """

    # ---------------------------------------------------------------- job state

    async def get(self, job_id: str) -> JobRecord | None:
        """The live record of a job, or None (never stored, cancelled or expired)."""
        return (await self._get_many([validate_job_id(job_id)]))[0]

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """``get`` for many ids in one call, in the order given."""
        ids = _check_ids(job_ids)
        return await self._get_many(ids) if ids else []

    @abc.abstractmethod
    async def _get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """The live records (``rules.is_live``) of ``job_ids``, in order; None where there is none."""

    async def update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        """Make a finished record expire ``ttl_ms`` from now (``rules.update_ttl``)."""
        return await self._update_ttl(validate_job_id(job_id), check_ms(ttl_ms, "ttl_ms", 1))

    @abc.abstractmethod
    async def _update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        """Apply ``rules.update_ttl`` atomically."""

    # ------------------------------------------------------------ notifications

    def subscribe(self, *channels: Channel) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        """Listen to the namespace's channels.

        Events published after ``__aenter__`` returns are delivered, in order
        per publisher; none published before. A subscriber to several
        channels receives an event once per channel it was published on.
        Delivery is best effort (a dropped connection loses events), so
        callers keep a fallback.

        Raises:
            ValueError: no channel, or ``control`` on a storage without ``ControlChannel``.
        """
        if not channels:
            raise ValueError("subscribe needs at least one channel")
        chosen = frozenset(Channel(channel) for channel in channels)
        if Channel.CONTROL in chosen and not isinstance(self, ControlChannel):
            raise ValueError(f"{type(self).__name__} has no control channel (capability ControlChannel)")
        return self._subscribe(chosen)

    @abc.abstractmethod
    def _subscribe(
        self, channels: frozenset[Channel]
    ) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        """A subscription to ``channels`` (see ``subscribe``)."""


class Capability(StrEnum):
    """An optional part of the contract."""

    MONITORING = "monitoring"
    LEADER_LOCK = "leader_lock"
    CONTROL_CHANNEL = "control_channel"
    MIGRATIONS = "migrations"
    TRANSACTIONAL_ENQUEUE = "transactional_enqueue"


class Monitoring(abc.ABC):
    """Capability: what dashboards and operators read and clean up."""

    async def counts(self) -> dict[JobState, int]:
        """Number of live jobs per state (every state present, zeros included)."""
        counts = await self._counts()
        return {state: counts.get(state, 0) for state in JobState}

    async def list_jobs(
        self, *, state: JobState | None = None, prefix: str = "", cursor: str | None = None, limit: int = 50
    ) -> JobPage:
        """Page through live jobs, newest first, filtered by state and id prefix."""
        if state is not None:
            state = JobState(state)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, got {limit!r}")
        return await self._list_jobs(state, prefix, cursor, limit)

    async def list_namespaces(self) -> list[str]:
        """Namespaces that hold jobs or workers in this storage, sorted."""
        return sorted(await self._list_namespaces())

    async def list_workers(self) -> list[WorkerRecord]:
        """Registered workers, and lapsed ones that still hold jobs, by id."""
        return sorted(await self._list_workers(), key=lambda worker: worker.id)

    async def purge(self, states: Iterable[JobState]) -> int:
        """Delete every job in the given finished states; return how many (``rules.purgeable``)."""
        return await self._purge(rules.purgeable(states))

    async def retry_failed(self, job_id: str) -> bool:
        """Queue a ``failed`` job again with its attempts reset (``rules.reset_failed``)."""
        return await self._retry_failed(validate_job_id(job_id))

    @abc.abstractmethod
    async def _counts(self) -> Mapping[JobState, int]:
        """Live jobs per state."""

    @abc.abstractmethod
    async def _list_jobs(
        self, state: JobState | None, prefix: str, cursor: str | None, limit: int
    ) -> JobPage:
        """One page of live jobs, newest first (``paging.page_jobs`` does it for records in reach)."""

    @abc.abstractmethod
    async def _list_namespaces(self) -> Iterable[str]:
        """Namespaces with jobs or workers."""

    @abc.abstractmethod
    async def _list_workers(self) -> Iterable[WorkerRecord]:
        """Live registrations, and lapsed ones that still hold jobs."""

    @abc.abstractmethod
    async def _purge(self, states: frozenset[JobState]) -> int:
        """Delete the jobs in ``states`` (already checked to be finished ones)."""

    @abc.abstractmethod
    async def _retry_failed(self, job_id: str) -> bool:
        """Apply ``rules.reset_failed`` atomically; False when the job is not failed."""


class LeaderLock(abc.ABC):
    """Capability: a lock with an owner and a TTL, for leader election."""

    @abc.abstractmethod
    async def acquire_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take ``key`` for ``owner`` for ``ttl_ms``, or renew it if ``owner`` holds it.

        False when another owner holds a live lock.
        """

    @abc.abstractmethod
    async def release_lock(self, key: str, owner: str) -> bool:
        """Release ``key`` if ``owner`` holds it; True when it was released."""


class ControlChannel:
    """Capability marker: abort requests are also published on ``Channel.CONTROL``.

    A storage that declares it delivers ``abort`` events to ``subscribe(Channel.CONTROL)``,
    so a running job stops at once; without it, at the worker's next heartbeat.
    """


class Migrations(abc.ABC):
    """Capability: a versioned schema, created or upgraded by ``migrate`` (and ``jobqueue migrate``)."""

    @abc.abstractmethod
    async def migrate(self) -> int:
        """Create or upgrade the schema now; return its version.

        Raises:
            StorageError: the stored schema is newer than this code, or the server failed.
        """


class TransactionalEnqueue(abc.ABC):
    """Capability: enqueue on the application's own connection, inside its transaction.

    ``Queue.enqueue(..., connection=conn)`` uses it: the jobs exist if and only
    if that transaction commits.
    """

    @abc.abstractmethod
    async def enqueue_many_on(self, connection: Any, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        """``enqueue_many`` on ``connection`` (the backend's own connection type), in its transaction."""


_CAPABILITIES: tuple[tuple[type, Capability], ...] = (
    (Monitoring, Capability.MONITORING),
    (LeaderLock, Capability.LEADER_LOCK),
    (ControlChannel, Capability.CONTROL_CHANNEL),
    (Migrations, Capability.MIGRATIONS),
    (TransactionalEnqueue, Capability.TRANSACTIONAL_ENQUEUE),
)


def capabilities(storage: object) -> frozenset[Capability]:
    """The optional capabilities a storage declares (by the mixins it subclasses)."""
    return frozenset(capability for mixin, capability in _CAPABILITIES if isinstance(storage, mixin))
