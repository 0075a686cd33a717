"""Worker operations of one namespace, synchronous: finish, heartbeat, progress, registration, recovery.

Each job change reads the record under its job lock, takes the step from
``jobqueue.storage.rules`` (``finish``, ``renew``, ``set_progress``,
``recover``) and applies it with ``Space.apply``. A registration is a small
file, ``workers/<worker key>``: ``[worker_id, last_seen, expires_at, info]``,
or the first three alone when the info is empty (as versions before info wrote them).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence

import msgpack
from jobqueue import CorruptDataError, JobState
from jobqueue.storage import (
    EventKind,
    Finish,
    JobRecord,
    Recovery,
    Revoked,
    Stalled,
    StorageEvent,
    now_ms,
    rules,
)

from . import _names as names
from ._atomic import read_bytes, unlink_if_exists, write_atomic
from ._locks import BUSY_RETRY_MS
from ._records import Stored
from ._space import Space, side_by_side

__all__ = [
    "Registration",
    "drop_worker_if_idle",
    "finish",
    "heartbeat",
    "held_jobs",
    "read_registration",
    "recover_stalled",
    "repair_processing",
    "set_progress",
    "settle_processing",
    "unregister",
]

Registration = tuple[str, int, int, bytes]
"""A worker's registration: (worker_id, last_seen, expires_at, info)."""


# ------------------------------------------------------------------ attempts


def finish(space: Space, worker_id: str, outcomes: Sequence[Finish]) -> list[bool]:
    """Apply ``rules.finish`` to each job the worker still owns (``rules.owned``); True for each one stored.

    The jobs of a batch are applied side by side (``side_by_side``: their
    fsyncs share journal commits), one thread per lock stripe, so outcomes
    of one job id stay in batch order.
    """
    by_stripe: dict[int, list[tuple[int, str]]] = {}  # one thread per lock stripe: none waits on another
    for index, outcome in enumerate(outcomes):
        key = names.encode_key(outcome.job_id)
        by_stripe.setdefault(space.locks.stripe(key), []).append((index, key))
    results: list[tuple[bool, StorageEvent | None]] = [(False, None)] * len(outcomes)

    def run(items: list[tuple[int, str]]) -> None:
        for index, key in items:
            results[index] = _finish_one(space, key, worker_id, outcomes[index])

    side_by_side([functools.partial(run, items) for items in by_stripe.values()], durable=space.durable)
    events = [event for _, event in results if event is not None]
    if events:
        # One flush for the batch, of the records only: an entry's rename lands in one directory or
        # the other, and wherever a power cut leaves it, ``settle`` moves it to where its record says.
        space.sync_dirs(space.layout.jobs)
        space.publish(events)
    return [done for done, _ in results]


def _finish_one(space: Space, key: str, worker_id: str, outcome: Finish) -> tuple[bool, StorageEvent | None]:
    with space.locks.hold(key):
        now = now_ms()
        stored = space.live(key, now)
        if stored is None or not rules.owned(stored.record, worker_id):
            return False, None
        step = rules.finish(stored.record, outcome, now)
        space.apply(key, stored, step)
    if step.event is None:
        return True, None
    return True, StorageEvent(step.event, outcome.job_id, now, worker_id, step.data)


def heartbeat(
    space: Space, worker_id: str, ttl_ms: int | None, job_ids: Sequence[str], lease_ms: int, info: bytes
) -> dict[str, Revoked]:
    """Refresh the registration (with ``ttl_ms``) and renew the leases (``rules.renew``); what to stop, and why."""
    if ttl_ms is not None:
        _register(space, worker_id, ttl_ms, info)
    revoked: dict[str, Revoked] = {}
    for job_id in job_ids:
        key = names.encode_key(job_id)
        with space.locks.hold(key):
            now = now_ms()
            stored = space.live(key, now)
            step, why = rules.renew(stored.record if stored is not None else None, worker_id, now, lease_ms)
            if step is not None:
                space.apply(key, stored, step)
        if why is not None:
            revoked[job_id] = why
    return revoked


def set_progress(space: Space, job_id: str, worker_id: str, data: bytes) -> bool:
    """Apply ``rules.set_progress`` and publish ``progress`` with the data; False when not owned."""
    key = names.encode_key(job_id)
    with space.locks.hold(key):
        now = now_ms()
        stored = space.live(key, now)
        step = rules.set_progress(stored.record if stored is not None else None, worker_id, data)
        if step is None:
            return False
        space.apply(key, stored, step)
    assert step.event is not None
    space.publish([StorageEvent(step.event, job_id, now, worker_id, step.data)])
    return True


# ------------------------------------------------------------------ recovery


def recover_stalled(space: Space) -> Recovery:
    """Apply ``rules.recover`` to every stalled job (``rules.is_stalled``); repair half-done moves on the way.

    Publishes ``stalled`` then ``requeued`` for each; returns them, oldest
    lease first, with the ms until the earliest remaining lease expires. A
    job whose lock is taken is skipped, not waited for (its holder may be
    frozen, and would hold up every other job): the ms returned is then at
    most ``BUSY_RETRY_MS``, so that the reaper comes back for it soon.
    """
    now = now_ms()
    expired: list[tuple[int, str, str, str]] = []
    leases: list[int] = []
    busy = False
    for found, parsed in space.processing_entries():
        stored, ok = space.read_entry(parsed.key, found)
        if not ok:
            continue
        if stored is not None and _in_place(stored, found) and not rules.is_stalled(stored.record, now):
            if stored.record.lease_until is not None:
                leases.append(stored.record.lease_until)  # a live lease: nothing to do, no lock to take
            continue
        with space.locks.try_hold(parsed.key) as held:
            if not held:
                busy = True
                continue
            stored = space.read(parsed.key)
            if stored is None or not _in_place(stored, found):
                space.settle(parsed.key, parsed.uid, found)
            elif rules.is_stalled(stored.record, now):
                expired.append((stored.record.lease_until or 0, parsed.key, parsed.uid, found))
            elif stored.record.lease_until is not None:
                leases.append(stored.record.lease_until)
    stalled: list[Stalled] = []
    # Latest lease first, each to the head: the job that stalled first is claimed first.
    for _, key, uid, found in sorted(expired, reverse=True):
        with space.locks.try_hold(key) as held:
            if not held:
                busy = True
                continue
            stored = space.read(key)
            if stored is None or stored.uid != uid or stored.entry != found:
                continue
            record = stored.record
            if not rules.is_stalled(record, now):
                if record.state is JobState.PROCESSING and record.lease_until is not None:
                    leases.append(record.lease_until)  # renewed meanwhile
                continue
            space.apply(key, stored, rules.recover(record, now))
        stalled.append(Stalled(record.id, record.worker_id or ""))
    stalled.reverse()
    events: list[StorageEvent] = []
    for item in stalled:
        events.append(StorageEvent(EventKind.STALLED, item.id, now, item.worker_id))
        events.append(StorageEvent(EventKind.REQUEUED, item.id, now, item.worker_id))
    space.publish(events)
    next_ms = max(min(leases) - now_ms(), 0) if leases else None
    if busy:
        next_ms = BUSY_RETRY_MS if next_ms is None else min(next_ms, BUSY_RETRY_MS)
    return Recovery(stalled, next_ms)


def repair_processing(space: Space) -> None:
    """Bring every entry under ``processing/`` in line with its record (run at connect).

    An entry whose job lock is taken is left for the sweep to retry
    (``Space.repair_pending``) rather than waited for: its holder is alive,
    and may be frozen for any length of time.
    """
    space.clean_temp_files()
    settle_processing(space)


def settle_processing(space: Space) -> None:
    """Settle each entry under ``processing/`` that disagrees with its record; note whether any was busy."""
    busy = False
    for found, parsed in space.processing_entries():
        stored, ok = space.read_entry(parsed.key, found)
        if not ok or _in_place(stored, found):
            continue  # in place (or unreadable): a change in flight moves it only under the lock, whole
        with space.locks.try_hold(parsed.key) as held:
            if not held:
                busy = True
                continue
            if not _in_place(space.read(parsed.key), found):
                space.settle(parsed.key, parsed.uid, found)
    space.repair_pending = busy


def _in_place(stored: Stored | None, found: str) -> bool:
    """The record says its job is processing, with its entry at ``found``."""
    return stored is not None and stored.entry == found and stored.record.state is JobState.PROCESSING


# ------------------------------------------------------------------- workers


def _worker_lock(key: str) -> str:
    return "worker:" + key


def _register(space: Space, worker_id: str, ttl_ms: int, info: bytes) -> None:
    key = names.encode_key(worker_id)
    with space.locks.hold(_worker_lock(key)):
        now = now_ms()
        joined = rules.register_worker(_expiry(space, key), now)
        expires_at = rules.later(now, ttl_ms)
        _write_registration(space, key, (worker_id, now, expires_at, info))
    space.deadline(expires_at)
    if joined is not None:
        space.publish([StorageEvent(joined, "", now, worker_id)])


def _expiry(space: Space, key: str) -> int | None:
    """When a worker's registration lapses (None: none, or torn: it is never fsynced)."""
    try:
        registration = read_registration(space, key)
    except CorruptDataError:
        return None
    return registration[2] if registration is not None else None


def _write_registration(space: Space, key: str, registration: Registration) -> None:
    # Not fsynced: a registration lost to a power cut is rewritten by the next heartbeat.
    # Without info, the three fields that versions before info read.
    fields = list(registration) if registration[3] else list(registration[:3])
    data = msgpack.packb(fields, use_bin_type=True)
    write_atomic(space.layout.worker_file(key), data, durable=False, mode=space.mode)


def read_registration(space: Space, key: str) -> Registration | None:
    """A worker's registration as stored (lapsed or not); ``CorruptDataError`` when unreadable."""
    path = space.layout.worker_file(key)
    data = read_bytes(path)
    if data is None:
        return None
    try:
        worker_id, last_seen, expires_at, *rest = msgpack.unpackb(data, raw=False)
        info = rest[0] if rest else b""
        if not (
            isinstance(worker_id, str)
            and isinstance(last_seen, int)
            and isinstance(expires_at, int)
            and isinstance(info, bytes)
            and len(rest) <= 1
        ):
            raise ValueError("fields of the wrong type")
    except Exception as exc:
        raise CorruptDataError(f"corrupt worker file {path}: {exc}") from exc
    return worker_id, last_seen, expires_at, info


def held_jobs(space: Space, worker_key: str) -> list[JobRecord]:
    """Records of the jobs processing under this worker, in claim order."""
    directory = space.layout.worker_dir(worker_key)
    try:
        listed = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    held: list[Stored] = []
    for name in listed:
        parsed = names.parse_entry(name, names.PROCESSING_PREFIX)
        if parsed is None:
            continue
        try:
            stored = space.read(parsed.key)
        except CorruptDataError:
            continue
        found = f"processing/{worker_key}/{name}"
        if stored is not None and stored.entry == found and stored.record.state is JobState.PROCESSING:
            held.append(stored)
    held.sort(key=lambda stored: stored.record.updated_at)
    return [stored.record for stored in held]


def unregister(space: Space, worker_id: str) -> None:
    """Remove a registration and publish ``rules.unregister_worker``'s event.

    A worker that still holds jobs stays listed, lapsed.
    """
    key = names.encode_key(worker_id)
    with space.locks.hold(_worker_lock(key)):
        now = now_ms()
        registration = read_registration(space, key)
        left = rules.unregister_worker(registration[2] if registration is not None else None, now)
        if registration is not None and held_jobs(space, key):
            lapsed = (worker_id, registration[1], min(registration[2], now), registration[3])
            _write_registration(space, key, lapsed)
        else:
            unlink_if_exists(space.layout.worker_file(key))
            _drop_worker_dir(space, key)
    if left is not None:
        space.publish([StorageEvent(left, "", now, worker_id)])


def drop_worker_if_idle(space: Space, key: str, now: int) -> int | None:
    """Forget a worker whose registration lapsed (or is gone) and that holds nothing.

    Returns when to look again: when the registration lapses, for a live one,
    or ``BUSY_RETRY_MS`` from ``now`` when its lock was taken (never waited
    for: the holder may be frozen); None otherwise.
    """
    with space.locks.try_hold(_worker_lock(key)) as held:
        if not held:
            return now + BUSY_RETRY_MS
        try:
            registration = read_registration(space, key)
        except CorruptDataError:
            registration = None  # a torn registration (it is never fsynced): treat it as lapsed
        if registration is not None and registration[2] > now:
            return registration[2]
        if not held_jobs(space, key):
            unlink_if_exists(space.layout.worker_file(key))
            _drop_worker_dir(space, key)
    return None


def _drop_worker_dir(space: Space, key: str) -> None:
    """Remove an empty ``processing/<worker>/`` (a later claim by that worker creates it again)."""
    with contextlib.suppress(OSError):  # gone already, or not empty: jobs or strays still there
        os.rmdir(space.layout.worker_dir(key))
