"""The storage contract: what every backend stores, atomically, and nothing more.

Storage stores; the core decides. A backend never decodes a message, never
chooses a delay or a TTL and never decides between retry and failure: the
core passes those in. Messages, results and errors cross this boundary as
``bytes``; durations and timestamps as integer milliseconds. Timestamps are
taken from the storage's own clock (the Redis server's, the host's), so that
several processes agree on lease deadlines.

A ``Storage`` instance is bound to one namespace (``name``). ``namespace(n)``
returns a view on another namespace that shares the same connections;
``connect``/``disconnect`` are idempotent and ref-counted across views.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Literal, Self

from ._types import JobState

__all__ = [
    "DEFAULT_NAMESPACE",
    "Channel",
    "Claim",
    "EnqueueOutcome",
    "EventKind",
    "JobPage",
    "JobRecord",
    "LeaderLock",
    "Stalled",
    "Storage",
    "StorageEvent",
    "TtlOutcome",
    "WorkerRecord",
]

DEFAULT_NAMESPACE = "default"


class Channel(StrEnum):
    """Pub/sub channels of a namespace.

    ``events``: every life-cycle event (dashboard, logs). ``done``: terminal
    outcomes only (``completed``, ``failed``, ``cancelled``), for waiters.
    ``control``: abort requests, for workers.
    """

    EVENTS = "events"
    DONE = "done"
    CONTROL = "control"


class EventKind(StrEnum):
    """What a storage event reports."""

    ENQUEUED = "enqueued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILING = "failing"
    FAILED = "failed"
    REQUEUED = "requeued"
    CANCELLED = "cancelled"
    STALLED = "stalled"
    ABORT = "abort"

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The channels an event of this kind is published on."""
        if self is EventKind.ABORT:
            return (Channel.CONTROL,)
        if self in (EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELLED):
            return (Channel.EVENTS, Channel.DONE)
        return (Channel.EVENTS,)


@dataclass(frozen=True, slots=True)
class StorageEvent:
    """One published event. ``data`` carries a small result or error on ``done``."""

    kind: EventKind
    job_id: str
    at: int
    worker_id: str | None = None
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """Everything a storage holds about one job.

    ``message`` is the core's envelope (opaque to the storage). ``attempts``
    counts claims. ``expires_at`` is set for terminal states; ``run_at`` for a
    job waiting in the schedule; ``lease_until`` for a job being processed.
    """

    id: str
    state: JobState
    message: bytes
    created_at: int
    updated_at: int
    attempts: int = 0
    worker_id: str | None = None
    result: bytes | None = None
    error: bytes | None = None
    run_at: int | None = None
    lease_until: int | None = None
    expires_at: int | None = None


@dataclass(frozen=True, slots=True)
class EnqueueOutcome:
    """``accepted`` is True when a new job was stored; else ``existing`` is the live record."""

    accepted: bool
    existing: JobRecord | None = None


@dataclass(frozen=True, slots=True)
class Claim:
    """A job handed to a worker by ``dequeue``: ``attempt`` is 1 on the first claim."""

    id: str
    message: bytes
    attempt: int


@dataclass(frozen=True, slots=True)
class Stalled:
    """A job whose lease ran out, put back in the queue by ``recover_stalled``."""

    id: str
    worker_id: str


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A registered worker: ``expires_at`` in the past means its heartbeat lapsed."""

    id: str
    last_seen: int
    expires_at: int
    jobs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of ``list_jobs``; pass ``next_cursor`` back for the next one (None: the end)."""

    records: list[JobRecord]
    next_cursor: str | None = None


TtlOutcome = Literal["updated", "not_found", "not_terminal"]


class Storage(abc.ABC):
    """Abstract base class of job storages. Every method may raise ``StorageError``."""

    # ---------------------------------------------------------------- lifecycle

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The namespace this instance is bound to."""

    @abc.abstractmethod
    def namespace(self, name: str) -> Self:
        """Return a view on namespace ``name`` sharing this storage's connections.

        Namespaces are isolated: jobs, events, workers and locks of one are
        invisible to another.
        """

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

    @abc.abstractmethod
    async def enqueue(self, job_id: str, message: bytes, *, delay_ms: int = 0) -> EnqueueOutcome:
        """Store a new job unless one with this id exists, atomically.

        With no live record the job is stored as ``queued`` and appended to the
        queue (or, with ``delay_ms > 0``, scheduled to become ready then), and
        ``enqueued`` is published. With a live record nothing changes and the
        record is returned. Of many concurrent calls with one id exactly one
        is accepted.
        """

    @abc.abstractmethod
    async def dequeue(self, worker_id: str, *, lease_ms: int, timeout_ms: int, limit: int = 1) -> list[Claim]:
        """Claim up to ``limit`` ready jobs for ``worker_id``, oldest first.

        Due scheduled jobs become ready first. Each claim atomically moves the
        job to the worker's processing set, sets ``processing``, increments
        ``attempts``, sets ``lease_until = now + lease_ms`` and publishes
        ``processing``. A cancelled job is never claimed. With nothing ready,
        waits up to ``timeout_ms`` (0: do not wait) and wakes as soon as a job
        is enqueued or a scheduled one falls due; returns ``[]`` on timeout.
        """

    @abc.abstractmethod
    async def renew_leases(self, worker_id: str, job_ids: Sequence[str], lease_ms: int) -> list[str]:
        """Extend the leases of the worker's running jobs to ``now + lease_ms``.

        Returns the ids the worker must stop: no longer its own (recovered as
        stalled, deleted) or with an abort requested.
        """

    @abc.abstractmethod
    async def release(self, job_id: str, worker_id: str) -> bool:
        """Give a claimed job back: to the head of the queue, its attempt not counted.

        Publishes ``requeued``. False when the job is not processing under
        this worker.
        """

    @abc.abstractmethod
    async def complete(self, job_id: str, worker_id: str, result: bytes, ttl_ms: int) -> bool:
        """Store the result, set ``completed``, expire the record after ``ttl_ms``.

        Atomic with removing the job from the worker's processing set and
        publishing ``completed`` (with ``result`` inline when it is small).
        False, and nothing changed, when the job is not processing under
        this worker (its lease was lost).
        """

    @abc.abstractmethod
    async def fail(self, job_id: str, worker_id: str, error: bytes, ttl_ms: int) -> bool:
        """Store the error, set ``failed``, expire the record after ``ttl_ms``.

        Same atomicity and ownership rule as ``complete``; publishes ``failed``.
        """

    @abc.abstractmethod
    async def retry(self, job_id: str, worker_id: str, error: bytes, delay_ms: int) -> bool:
        """Store the error, set ``failing`` and schedule the job ``delay_ms`` from now.

        Same atomicity and ownership rule as ``complete``; publishes ``failing``.
        The job becomes ``queued`` again when it falls due.
        """

    @abc.abstractmethod
    async def cancel(self, job_id: str) -> JobState | None:
        """Cancel a job that has not started; return the state it had (None: no record).

        ``queued`` and ``failing`` jobs are removed from the queue or schedule
        and deleted, atomically with respect to ``dequeue``, and ``cancelled``
        is published. ``failed`` records are deleted (freeing the id).
        ``processing`` and ``completed`` jobs are left as they are.
        """

    @abc.abstractmethod
    async def request_abort(self, job_id: str) -> JobState | None:
        """Stop a job wherever it is; return the state it had (None: no record).

        A job that has not started is cancelled as ``cancel`` does. A
        ``processing`` job is flagged (``renew_leases`` reports it) and an
        ``abort`` event is published on ``control``.
        """

    @abc.abstractmethod
    async def recover_stalled(self) -> list[Stalled]:
        """Put every job whose lease has expired back at the head of the queue.

        Atomic per job with respect to ``complete``/``fail``/``retry``: a late
        finish of a recovered job returns False. Publishes ``stalled`` then
        ``requeued`` for each. Never drops a job.
        """

    @abc.abstractmethod
    async def next_lease_expiry(self) -> int | None:
        """Milliseconds until the earliest lease expires (<= 0: already expired; None: none)."""

    # ---------------------------------------------------------------- job state

    @abc.abstractmethod
    async def get(self, job_id: str) -> JobRecord | None:
        """The live record of a job, or None (never stored, cancelled or expired)."""

    @abc.abstractmethod
    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """``get`` for many ids in one round trip, in the order given."""

    @abc.abstractmethod
    async def delete(self, job_id: str) -> bool:
        """Remove every trace of a job that is not processing; True when something was removed."""

    @abc.abstractmethod
    async def update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        """Make a terminal record expire ``ttl_ms`` from now."""

    # ------------------------------------------------------------------ workers

    @abc.abstractmethod
    async def register_worker(self, worker_id: str, ttl_ms: int) -> None:
        """Register a worker or refresh its heartbeat; it lapses after ``ttl_ms``."""

    @abc.abstractmethod
    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker's registration. Jobs it still holds stay recoverable."""

    @abc.abstractmethod
    async def list_workers(self) -> list[WorkerRecord]:
        """Registered workers, and lapsed ones that still hold jobs."""

    # ------------------------------------------------------------ notifications

    @abc.abstractmethod
    def subscribe(self, *channels: Channel) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        """Listen to the namespace's channels.

        Events published after ``__aenter__`` returns are delivered, in order
        per publisher; none published before. A subscriber to several channels
        receives an event once per channel it was published on. Delivery is best effort (a
        dropped connection loses events), so callers keep a fallback.
        """

    # --------------------------------------------------------------- monitoring

    @abc.abstractmethod
    async def counts(self) -> dict[JobState, int]:
        """Number of live jobs per state (every state present, zeros included)."""

    @abc.abstractmethod
    async def list_jobs(
        self,
        *,
        state: JobState | None = None,
        prefix: str = "",
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        """Page through live jobs, newest first, filtered by state and id prefix."""

    @abc.abstractmethod
    async def list_namespaces(self) -> list[str]:
        """Namespaces that hold jobs or workers in this storage."""

    @abc.abstractmethod
    async def retry_failed(self, job_id: str) -> bool:
        """Queue a ``failed`` job again with its attempts reset; False when it is not failed."""

    @abc.abstractmethod
    async def purge(self, states: Sequence[JobState]) -> int:
        """Delete every job in the given terminal states; return how many."""


class LeaderLock(abc.ABC):
    """Optional capability: a lock with an owner and a TTL, for leader election."""

    @abc.abstractmethod
    async def acquire_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take ``key`` for ``owner`` for ``ttl_ms``, or renew it if ``owner`` holds it.

        False when another owner holds a live lock.
        """

    @abc.abstractmethod
    async def release_lock(self, key: str, owner: str) -> bool:
        """Release ``key`` if ``owner`` holds it; True when it was released."""
