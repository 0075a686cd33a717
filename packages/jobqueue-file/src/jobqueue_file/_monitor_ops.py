"""Monitoring operations of one namespace, synchronous: counts, listings, purge, retry of failed jobs.

These read every record of the namespace: fine for thousands of jobs, slow
for millions (the README says so).
"""

from __future__ import annotations

import os

from jobqueue import JobState
from jobqueue.storage import JobPage, StorageEvent, WorkerRecord, now_ms, page_jobs, rules

from . import _names as names
from ._atomic import TEMP_PREFIX, named
from ._space import Space
from ._worker_ops import drop_worker_if_idle, held_jobs, read_registration

__all__ = ["counts", "is_empty", "list_jobs", "list_workers", "purge", "retry_failed"]


def counts(space: Space) -> dict[JobState, int]:
    """Live jobs per state, every state present."""
    now = now_ms()
    found = dict.fromkeys(JobState, 0)
    for _, stored in space.records():
        if rules.is_live(stored.record, now):
            found[stored.record.state] += 1
    return found


def list_jobs(space: Space, state: JobState | None, prefix: str, cursor: str | None, limit: int) -> JobPage:
    """A page of live jobs, newest first (``page_jobs``)."""
    now = now_ms()
    live = (stored.record for _, stored in space.records() if rules.is_live(stored.record, now))
    return page_jobs(live, state=state, prefix=prefix, cursor=cursor, limit=limit)


def purge(space: Space, states: frozenset[JobState]) -> int:
    """Delete every live job in ``states`` (already checked by ``rules.purgeable``)."""
    removed = 0
    for key, stored in list(space.records()):
        if stored.record.state not in states:
            continue
        with space.locks.hold(key):
            current = space.live(key, now_ms())
            if current is not None and current.record.state in states:
                space.apply(key, current, rules.Step(None))
                removed += 1
    return removed


def retry_failed(space: Space, job_id: str) -> bool:
    """Apply ``rules.reset_failed``: a failed job is queued again as a new incarnation (a new uid)."""
    key = names.encode_key(job_id)
    with space.locks.hold(key):
        now = now_ms()
        stored = space.live(key, now)
        step = rules.reset_failed(stored.record if stored is not None else None, now)
        if step is None:
            return False
        space.apply(key, stored, step, new_uid=True)
    space.sync_dirs(space.layout.queue, space.layout.jobs)
    assert step.event is not None
    space.publish([StorageEvent(step.event, job_id, now)])
    return True


def list_workers(space: Space) -> list[WorkerRecord]:
    """Live registrations, and lapsed workers that still hold jobs; idle lapsed ones are forgotten."""
    now = now_ms()
    found: dict[str, WorkerRecord] = {}
    keys = set(_listdir(space.layout.workers)) | set(_listdir(space.layout.processing))
    for key in keys:
        if key.startswith((TEMP_PREFIX, ".")):
            continue
        held = held_jobs(space, key)
        registration = read_registration(space, key)
        if not held and (registration is None or registration[2] <= now):
            drop_worker_if_idle(space, key, now_ms())
            continue
        worker_id = registration[0] if registration is not None else held[0].worker_id or ""
        _, last_seen, expires_at, info = registration if registration is not None else ("", 0, 0, b"")
        found[worker_id] = WorkerRecord(
            worker_id, last_seen, expires_at, tuple(record.id for record in held), info
        )
    return [found[worker_id] for worker_id in sorted(found)]


def is_empty(space: Space) -> bool:
    """True when the namespace holds no live job and no worker."""
    now = now_ms()
    return not any(rules.is_live(stored.record, now) for _, stored in space.records()) and not list_workers(
        space
    )


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise named(exc, directory) from exc
