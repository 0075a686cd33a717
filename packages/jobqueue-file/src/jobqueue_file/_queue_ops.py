"""Queue operations of one namespace, synchronous (``FileStorage`` runs each in a worker thread).

enqueue, promote, claim, cancel, get, update_ttl: each reads a record under
its job lock, takes the step from ``jobqueue.storage.rules`` and applies it
with ``Space.apply``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from jobqueue import JobState
from jobqueue.storage import (
    Claim,
    EnqueueOutcome,
    EventKind,
    JobRecord,
    NewJob,
    StorageEvent,
    TtlOutcome,
    now_ms,
    rules,
)

from . import _names as names
from ._space import EntryGone, Space, side_by_side

__all__ = ["cancel", "claim", "enqueue", "get_many", "promote_and_claim", "promote_due", "update_ttl"]


def enqueue(space: Space, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
    """Store each job unless a live one has its id (``rules.new_record``); one outcome per job.

    A later job of the batch with the id of an earlier accepted one finds
    that job's record, so it is a duplicate of it. The directories are
    flushed once for the whole batch.
    """
    outcomes: list[EnqueueOutcome] = []
    events: list[StorageEvent] = []
    dirs: set[str] = set()
    for job in jobs:
        key = names.encode_key(job.id)
        with space.locks.hold(key):
            now = now_ms()
            old = space.read(key)
            if old is not None and rules.is_live(old.record, now):
                outcomes.append(EnqueueOutcome(False, old.record))
                continue
            step = rules.new_record(job, now)
            stored = space.apply(key, old, step, new_uid=True)
        assert stored is not None and stored.entry is not None and step.event is not None
        dirs.add(space.layout.path(stored.entry.partition("/")[0]))
        outcomes.append(EnqueueOutcome(True))
        events.append(StorageEvent(step.event, job.id, now))
    if events:
        space.sync_dirs(*dirs, space.layout.jobs)
        space.publish(events)
    return outcomes


def promote_due(space: Space) -> int | None:
    """Move due scheduled jobs to the tail of the queue (``rules.promote``); return the next due time."""
    now = now_ms()
    for name in space.scheduled.names():
        parsed = names.parse_entry(name, names.SCHEDULED_PREFIX)
        if parsed is None:
            continue
        run_at = int(parsed.prefix)
        if run_at > now:
            return run_at
        found = "scheduled/" + name
        with space.locks.hold(parsed.key):
            stored, ok = space.read_entry(parsed.key, found)
            if not ok:
                continue
            if stored is None or stored.uid != parsed.uid or stored.entry != found:
                space.settle(parsed.key, parsed.uid, found)
                space.scheduled.discard(name)
                continue
            if rules.is_due(stored.record, now):
                space.apply(parsed.key, stored, rules.promote(stored.record, now))
    return None


def claim(space: Space, worker_id: str, lease_ms: int, limit: int) -> list[Claim]:
    """Claim up to ``limit`` queued jobs for ``worker_id`` in name order (``rules.claim``).

    An entry whose lock is busy (most likely another process claiming it)
    is passed over at first and tried again, waiting for the lock, once the
    others are done, so claimers do not queue up behind each other.
    """
    claims: list[Claim] = []
    busy: list[str] = []
    refreshed = False
    while len(claims) < limit:
        # Pop a round of names; the directory is listed again only between rounds, so that no name
        # still being claimed comes back (a stale listing refreshed mid-round could: skipped below).
        popped: list[str] = []
        while len(claims) + len(popped) < limit:
            name = space.queue.pop(refresh=not refreshed and not popped)
            if name is None:
                break
            if name not in popped:
                popped.append(name)
        if not popped:
            if refreshed:
                break
            refreshed = True  # list once more: other processes may have added jobs
            continue
        for name, outcome in zip(popped, _claim_round(space, popped, worker_id, lease_ms), strict=True):
            if outcome == "busy":
                busy.append(name)
            elif isinstance(outcome, Claim):
                claims.append(outcome)
    for name in busy:
        if len(claims) >= limit:
            break
        outcome = _claim_one(space, name, worker_id, lease_ms, wait=True)
        if isinstance(outcome, Claim):
            claims.append(outcome)
    now = now_ms()
    space.publish([StorageEvent(EventKind.PROCESSING, claim.id, now, worker_id) for claim in claims])
    return claims


def _claim_round(space: Space, popped: list[str], worker_id: str, lease_ms: int) -> list[Claim | str | None]:
    """``_claim_one`` (not waiting) for each name, side by side; the outcomes in the order of the names.

    Names of one lock stripe go to one thread, so that a claim never finds
    the lock busy with its own batch.
    """
    by_stripe: dict[int, list[int]] = {}
    for index, name in enumerate(popped):
        parsed = names.parse_entry(name, names.QUEUE_PREFIX)
        by_stripe.setdefault(space.locks.stripe(parsed.key) if parsed else -1, []).append(index)
    outcomes: list[Claim | str | None] = [None] * len(popped)

    def run(indexes: list[int]) -> None:
        for index in indexes:
            outcomes[index] = _claim_one(space, popped[index], worker_id, lease_ms, wait=False)

    side_by_side([functools.partial(run, indexes) for indexes in by_stripe.values()], durable=space.durable)
    return outcomes


def promote_and_claim(
    space: Space, worker_id: str, lease_ms: int, limit: int
) -> tuple[list[Claim], int | None]:
    """``promote_due`` then ``claim``: the claims, and when the next scheduled job falls due."""
    next_due = promote_due(space)
    return claim(space, worker_id, lease_ms, limit), next_due


def _claim_one(space: Space, name: str, worker_id: str, lease_ms: int, *, wait: bool) -> Claim | str | None:
    """Claim the job of ``queue/<name>``: a Claim, ``"busy"`` (lock taken, ``wait`` False) or None."""
    parsed = names.parse_entry(name, names.QUEUE_PREFIX)
    if parsed is None:
        return None
    found = "queue/" + name
    with space.locks.try_hold(parsed.key) if not wait else _held(space.locks.hold(parsed.key)) as held:
        if not held:
            return "busy"
        stored, ok = space.read_entry(parsed.key, found)
        if not ok:
            space.queue.skip.add(name)
            return None
        now = now_ms()
        if (
            stored is None
            or stored.uid != parsed.uid
            or stored.entry != found
            or not rules.is_live(stored.record, now)
            or stored.record.state is not JobState.QUEUED
        ):
            space.settle(parsed.key, parsed.uid, found)
            return None
        step = rules.claim(stored.record, worker_id, now, lease_ms)
        try:
            claimed = space.apply(parsed.key, stored, step)
        except EntryGone:
            return None  # nothing to claim
    assert claimed is not None
    return Claim(claimed.record.id, claimed.record.message, claimed.record.attempts)


@contextmanager
def _held(lock: AbstractContextManager[None]) -> Iterator[bool]:
    """A blocking lock shaped like ``StripeLocks.try_hold``: always held."""
    with lock:
        yield True


def cancel(space: Space, job_id: str, abort: bool) -> JobState | None:
    """Apply ``rules.cancel`` under the job lock (so never half-way through a claim); return the prior state."""
    key = names.encode_key(job_id)
    event: StorageEvent | None = None
    with space.locks.hold(key):
        now = now_ms()
        stored = space.live(key, now)
        if stored is None:
            return None
        record = stored.record
        step = rules.cancel(record, abort=abort)
        if step is not None:
            space.apply(key, stored, step)
            if step.event is not None:
                event = StorageEvent(step.event, job_id, now, record.worker_id)
    if event is not None:
        space.publish([event])
    return record.state


def get_many(space: Space, job_ids: Sequence[str]) -> list[JobRecord | None]:
    """The live records of ``job_ids`` (``rules.is_live``), in order."""
    now = now_ms()
    found: list[JobRecord | None] = []
    for job_id in job_ids:
        stored = space.live(names.encode_key(job_id), now)
        found.append(stored.record if stored is not None else None)
    return found


def update_ttl(space: Space, job_id: str, ttl_ms: int) -> TtlOutcome:
    """Apply ``rules.update_ttl``: the record expires ``ttl_ms`` from now, its expiry entry renamed to match."""
    key = names.encode_key(job_id)
    with space.locks.hold(key):
        now = now_ms()
        stored = space.live(key, now)
        step, outcome = rules.update_ttl(stored.record if stored is not None else None, now, ttl_ms)
        if step is not None:
            space.apply(key, stored, step)
    return outcome
