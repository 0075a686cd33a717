"""The rules of a job's life, once: pure functions over a ``JobRecord``.

Every state change a storage makes is one of these functions. Memory and
file storages call them; the Redis Lua scripts and the PostgreSQL statements
cannot, so they mirror them, each with a comment naming the function. A
function returns a ``Step``: the new record (or None: delete it), where the
job's queue entry goes, and the event to publish. Nothing here does I/O or
reads a clock; ``now`` is always passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .._durations import MAX_SECONDS
from .._types import JobState
from .records import EventKind, Finish, FinishKind, JobRecord, NewJob, Revoked, TtlOutcome

__all__ = [
    "INLINE_RESULT_LIMIT",
    "MAX_BATCH",
    "MAX_DEADLINE_MS",
    "MAX_WORKER_INFO",
    "PRIORITY_MAX",
    "PRIORITY_MIN",
    "PURGEABLE_STATES",
    "CancelAction",
    "Place",
    "Step",
    "cancel",
    "cancel_action",
    "evolve",
    "claim",
    "claim_order",
    "finish",
    "inline",
    "is_due",
    "is_live",
    "is_stalled",
    "later",
    "new_record",
    "owned",
    "promote",
    "purgeable",
    "recover",
    "register_worker",
    "renew",
    "reset_failed",
    "set_progress",
    "unregister_worker",
    "update_ttl",
]

INLINE_RESULT_LIMIT = 8 * 1024
"""Results and errors up to this size ride along on ``done`` events; larger ones are fetched."""

MAX_BATCH = 1000
"""The most jobs one ``enqueue_many`` or ``finish_many`` call takes."""

MAX_WORKER_INFO = 64 * 1024
"""The largest ``info`` a worker registers with its heartbeat (bytes)."""

PRIORITY_MIN, PRIORITY_MAX = -1000, 1000
"""Allowed priorities: higher is claimed first, FIFO within one priority."""

MAX_DEADLINE_MS = 2 * MAX_SECONDS * 1000 + 4_102_444_800_000
"""No deadline lies past this (year 2100 plus 200 years): integers stay exact everywhere."""

PURGEABLE_STATES = frozenset({JobState.COMPLETED, JobState.FAILED})
"""The states ``purge`` may delete: only finished jobs."""


class Place(Enum):
    """Where a job's queue entry goes after a step."""

    NONE = "none"  # nowhere: processing, finished, or deleted
    TAIL = "tail"  # the end of the ready queue (new and promoted jobs)
    HEAD = "head"  # the front of the ready queue (released and recovered jobs)
    SCHEDULE = "schedule"  # waiting for run_at (delayed jobs and retries)


@dataclass(frozen=True, slots=True)
class Step:
    """The result of a rule: store ``record`` (None: delete it), put its entry at ``place``, publish ``event``."""

    record: JobRecord | None
    place: Place = Place.NONE
    event: EventKind | None = None
    data: bytes | None = None


def evolve(record: JobRecord, **changes: Any) -> JobRecord:
    """A copy of ``record`` with ``changes``: ``dataclasses.replace`` at a third of its cost (hot path)."""
    get = changes.get
    r = record
    return JobRecord(
        get("id", r.id),
        get("state", r.state),
        get("message", r.message),
        get("created_at", r.created_at),
        get("updated_at", r.updated_at),
        get("attempts", r.attempts),
        get("worker_id", r.worker_id),
        get("result", r.result),
        get("error", r.error),
        get("run_at", r.run_at),
        get("lease_until", r.lease_until),
        get("expires_at", r.expires_at),
        get("priority", r.priority),
        get("abort_requested", r.abort_requested),
        get("progress", r.progress),
    )


def later(now: int, ms: int) -> int:
    """``now + ms``, capped at ``MAX_DEADLINE_MS`` (a huge TTL or delay means "forever")."""
    return min(now + max(ms, 0), MAX_DEADLINE_MS)


def inline(data: bytes | None) -> bytes | None:
    """``data`` when it is small enough to ride on an event, else None."""
    return data if data is not None and len(data) <= INLINE_RESULT_LIMIT else None


def claim_order(record: JobRecord, seq: int) -> tuple[int, int]:
    """Sort key of a ready job: higher priority first, then first in, first out (``seq``)."""
    return (-record.priority, seq)


# ------------------------------------------------------------------ enqueue


def new_record(job: NewJob, now: int) -> Step:
    """A new job: ``queued``, at the tail of the queue or scheduled ``delay_ms`` from now."""
    record = JobRecord(
        id=job.id,
        state=JobState.QUEUED,
        message=job.message,
        created_at=now,
        updated_at=now,
        priority=job.priority,
    )
    if job.delay_ms > 0:
        return Step(evolve(record, run_at=later(now, job.delay_ms)), Place.SCHEDULE, EventKind.ENQUEUED)
    return Step(record, Place.TAIL, EventKind.ENQUEUED)


def is_live(record: JobRecord, now: int) -> bool:
    """False once a finished record's TTL has passed: it is invisible from then on."""
    return record.expires_at is None or record.expires_at > now


def is_due(record: JobRecord, now: int) -> bool:
    """A scheduled job or a retry whose time has come."""
    return (
        record.state in (JobState.QUEUED, JobState.FAILING)
        and record.run_at is not None
        and record.run_at <= now
    )


def promote(record: JobRecord, now: int) -> Step:
    """A due scheduled job or retry becomes ``queued`` at the tail (no event: it was announced)."""
    return Step(evolve(record, state=JobState.QUEUED, run_at=None, updated_at=now), Place.TAIL)


# ------------------------------------------------------------------- workers


def claim(record: JobRecord, worker_id: str, now: int, lease_ms: int) -> Step:
    """A ready job is claimed: ``processing`` under ``worker_id``, one more attempt, a fresh lease."""
    claimed = evolve(
        record,
        state=JobState.PROCESSING,
        worker_id=worker_id,
        attempts=record.attempts + 1,
        lease_until=later(now, lease_ms),
        run_at=None,
        abort_requested=False,
        updated_at=now,
    )
    return Step(claimed, Place.NONE, EventKind.PROCESSING)


def owned(record: JobRecord | None, worker_id: str) -> bool:
    """True when the job is processing under ``worker_id``: only then may the worker change it."""
    return record is not None and record.state is JobState.PROCESSING and record.worker_id == worker_id


def renew(
    record: JobRecord | None, worker_id: str, now: int, lease_ms: int
) -> tuple[Step | None, Revoked | None]:
    """Extend a running job's lease to ``now + lease_ms``; a lease only moves forward.

    Returns the step (None: nothing to write) and why the worker must stop
    the job (None: it goes on).
    """
    if record is None or not owned(record, worker_id):
        return None, Revoked.LOST
    lease = later(now, lease_ms)
    step = None
    if record.lease_until is None or lease > record.lease_until:
        step = Step(evolve(record, lease_until=lease))
    return step, Revoked.ABORTED if record.abort_requested else None


def register_worker(expires_at: int | None, now: int) -> EventKind | None:
    """The event of a heartbeat that registers: ``worker_joined`` unless the registration was live.

    ``expires_at`` is the worker's registration before the heartbeat (None:
    none). A worker never registered, unregistered or lapsed joins again; a
    renewal of a live registration publishes nothing.
    """
    return None if expires_at is not None and expires_at > now else EventKind.WORKER_JOINED


def unregister_worker(expires_at: int | None, now: int) -> EventKind | None:
    """The event of an unregistration: ``worker_left`` when the registration was live, else nothing."""
    return EventKind.WORKER_LEFT if expires_at is not None and expires_at > now else None


def set_progress(record: JobRecord | None, worker_id: str, data: bytes) -> Step | None:
    """Store a running job's progress value (None: the worker does not own the job)."""
    if record is None or not owned(record, worker_id):
        return None
    return Step(evolve(record, progress=data), Place.NONE, EventKind.PROGRESS, data)


def finish(record: JobRecord, outcome: Finish, now: int) -> Step:
    """End the attempt of an owned job as the core decided; the abort flag is cleared.

    - ``COMPLETE``/``FAIL``: ``completed``/``failed``, kept until ``now + ttl``.
    - ``RETRY``: ``failing``, the error kept, due again at ``now + delay``.
    - ``RELEASE``: ``queued`` at the head, the attempt not counted.
    """
    ended = {"worker_id": None, "lease_until": None, "abort_requested": False, "updated_at": now}
    kind, data = outcome.kind, outcome.data
    if kind is FinishKind.COMPLETE:
        done = evolve(
            record, **ended, state=JobState.COMPLETED, result=data, expires_at=later(now, outcome.ms)
        )
        return Step(done, Place.NONE, EventKind.COMPLETED, inline(data))
    if kind is FinishKind.FAIL:
        failed = evolve(record, **ended, state=JobState.FAILED, error=data, expires_at=later(now, outcome.ms))
        return Step(failed, Place.NONE, EventKind.FAILED, inline(data))
    if kind is FinishKind.RETRY:
        failing = evolve(record, **ended, state=JobState.FAILING, error=data, run_at=later(now, outcome.ms))
        return Step(failing, Place.SCHEDULE, EventKind.FAILING)
    released = evolve(record, **ended, state=JobState.QUEUED, attempts=max(record.attempts - 1, 0))
    return Step(released, Place.HEAD, EventKind.REQUEUED)


def is_stalled(record: JobRecord, now: int) -> bool:
    """A processing job whose lease has run out."""
    return (
        record.state is JobState.PROCESSING and record.lease_until is not None and record.lease_until <= now
    )


def recover(record: JobRecord, now: int) -> Step:
    """A stalled job goes back to the head of the queue; its attempt counts (publish ``stalled``, then ``requeued``)."""
    requeued = evolve(
        record, state=JobState.QUEUED, worker_id=None, lease_until=None, abort_requested=False, updated_at=now
    )
    return Step(requeued, Place.HEAD, EventKind.STALLED)


# ------------------------------------------------------------ cancel, admin


class CancelAction(Enum):
    """What ``cancel``/``request_abort`` does to a job in a given state."""

    NOTHING = "nothing"  # processing (cancel) or completed: left as is
    DELETE = "delete"  # queued or failing: removed, ``cancelled`` published
    CLEAR = "clear"  # failed: the record is removed silently, freeing the id
    FLAG = "flag"  # processing (abort): flagged, ``abort`` published on control


def cancel_action(state: JobState, *, abort: bool) -> CancelAction:
    """The cancel/abort table (README: Cancel and abort)."""
    if state in (JobState.QUEUED, JobState.FAILING):
        return CancelAction.DELETE
    if state is JobState.FAILED:
        return CancelAction.NOTHING if abort else CancelAction.CLEAR
    if state is JobState.PROCESSING and abort:
        return CancelAction.FLAG
    return CancelAction.NOTHING


def cancel(record: JobRecord, *, abort: bool) -> Step | None:
    """Apply ``cancel_action`` to a live record (None: leave it as it is)."""
    action = cancel_action(record.state, abort=abort)
    if action is CancelAction.DELETE:
        return Step(None, Place.NONE, EventKind.CANCELLED)
    if action is CancelAction.CLEAR:
        return Step(None)
    if action is CancelAction.FLAG:
        return Step(evolve(record, abort_requested=True), Place.NONE, EventKind.ABORT)
    return None


def update_ttl(record: JobRecord | None, now: int, ttl_ms: int) -> tuple[Step | None, TtlOutcome]:
    """Make a finished record expire ``ttl_ms`` from now (shorter or longer)."""
    if record is None:
        return None, "not_found"
    if not record.state.is_terminal:
        return None, "not_terminal"
    return Step(evolve(record, expires_at=later(now, ttl_ms))), "updated"


def reset_failed(record: JobRecord | None, now: int) -> Step | None:
    """A ``failed`` job is queued again at the tail, its attempts and error cleared (None: not failed)."""
    if record is None or record.state is not JobState.FAILED:
        return None
    queued = evolve(
        record, state=JobState.QUEUED, attempts=0, error=None, expires_at=None, run_at=None, updated_at=now
    )
    return Step(queued, Place.TAIL, EventKind.ENQUEUED)


def purgeable(states: Iterable[JobState]) -> frozenset[JobState]:
    """Check the states a ``purge`` may touch.

    Raises:
        ValueError: a state that is not finished (purge never deletes live work).
    """
    chosen = frozenset(JobState(state) for state in states)
    refused = sorted(chosen - PURGEABLE_STATES)
    if refused:
        raise ValueError(f"purge only deletes completed and failed jobs, not {', '.join(refused)}")
    return chosen
