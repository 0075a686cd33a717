"""The values that cross the storage boundary: records, claims, outcomes, events.

Messages, results and errors are ``bytes`` (the core encodes them); durations
and timestamps are integer milliseconds, taken from the storage's own clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from .._types import JobState

__all__ = [
    "DEFAULT_NAMESPACE",
    "Channel",
    "Claim",
    "EnqueueOutcome",
    "EventKind",
    "Finish",
    "FinishKind",
    "JobPage",
    "JobRecord",
    "NewJob",
    "Recovery",
    "Revoked",
    "Stalled",
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
    """What a storage event reports.

    Job events carry the job's id. ``worker_joined`` and ``worker_left`` are
    about a worker: their ``job_id`` is ``""`` and ``worker_id`` names it.
    """

    ENQUEUED = "enqueued"
    PROCESSING = "processing"
    PROGRESS = "progress"
    COMPLETED = "completed"
    FAILING = "failing"
    FAILED = "failed"
    REQUEUED = "requeued"
    CANCELLED = "cancelled"
    STALLED = "stalled"
    ABORT = "abort"
    WORKER_JOINED = "worker_joined"
    WORKER_LEFT = "worker_left"

    @property
    def channels(self) -> tuple[Channel, ...]:
        """The channels an event of this kind is published on."""
        return _CHANNELS[self]


_CHANNELS = {
    kind: (Channel.CONTROL,)
    if kind is EventKind.ABORT
    else (Channel.EVENTS, Channel.DONE)
    if kind in (EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELLED)
    else (Channel.EVENTS,)
    for kind in EventKind
}


@dataclass(frozen=True, slots=True)
class StorageEvent:
    """One published event. ``data`` carries a small result or error on ``done``, or a progress value.

    ``job_id`` is ``""`` for the worker events (``worker_joined``, ``worker_left``).
    """

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
    job waiting to fall due; ``lease_until`` for a job being processed.
    ``abort_requested`` marks a processing job that ``request_abort`` flagged;
    it is cleared whenever the attempt ends.
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
    priority: int = 0
    abort_requested: bool = False
    progress: bytes | None = None


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to store: ``delay_ms > 0`` makes it due later; a higher ``priority`` is claimed first."""

    id: str
    message: bytes
    delay_ms: int = 0
    priority: int = 0


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


class FinishKind(StrEnum):
    """How an attempt ends (see ``rules.finish``)."""

    COMPLETE = "complete"  # completed: the result is kept for ttl_ms
    FAIL = "fail"  # failed: the error is kept for ttl_ms
    RETRY = "retry"  # failing: the error is kept, the job is due again after delay_ms
    RELEASE = "release"  # queued again at the head, the attempt not counted


@dataclass(frozen=True, slots=True)
class Finish:
    """The end of one attempt, as the core decided it.

    ``data`` is the result (``COMPLETE``) or the error (``FAIL``/``RETRY``);
    ``ms`` is the TTL (``COMPLETE``/``FAIL``) or the retry delay (``RETRY``).
    """

    job_id: str
    kind: FinishKind
    data: bytes | None = None
    ms: int = 0

    @classmethod
    def complete(cls, job_id: str, result: bytes, ttl_ms: int) -> Finish:
        """The attempt succeeded."""
        return cls(job_id, FinishKind.COMPLETE, result, ttl_ms)

    @classmethod
    def fail(cls, job_id: str, error: bytes, ttl_ms: int) -> Finish:
        """The job failed for good."""
        return cls(job_id, FinishKind.FAIL, error, ttl_ms)

    @classmethod
    def retry(cls, job_id: str, error: bytes, delay_ms: int) -> Finish:
        """The attempt failed and another is due after ``delay_ms``."""
        return cls(job_id, FinishKind.RETRY, error, delay_ms)

    @classmethod
    def release(cls, job_id: str) -> Finish:
        """The worker gives the job back unfinished (shutdown)."""
        return cls(job_id, FinishKind.RELEASE)


class Revoked(StrEnum):
    """Why a worker must stop a running job (``heartbeat``/``renew_leases``)."""

    ABORTED = "aborted"  # still the worker's, but an abort was requested
    LOST = "lost"  # no longer the worker's: recovered as stalled, finished or gone


@dataclass(frozen=True, slots=True)
class Stalled:
    """A job whose lease ran out, put back in the queue by ``recover_stalled``."""

    id: str
    worker_id: str


@dataclass(frozen=True, slots=True)
class Recovery:
    """One ``recover_stalled`` pass: what was recovered, and ms until the next lease expires."""

    stalled: list[Stalled]
    next_expiry_ms: int | None = None


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A registered worker: ``expires_at`` in the past means its heartbeat lapsed.

    ``info`` is what the worker registered with its last heartbeat, opaque to
    the storage (the core's encoding of its schedules); ``b""`` when none.
    """

    id: str
    last_seen: int
    expires_at: int
    jobs: tuple[str, ...] = ()
    info: bytes = b""


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of ``list_jobs``; pass ``next_cursor`` back for the next one (None: the end)."""

    records: list[JobRecord]
    next_cursor: str | None = None


TtlOutcome = Literal["updated", "not_found", "not_terminal"]
