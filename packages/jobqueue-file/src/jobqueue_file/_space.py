"""The queue operations of one namespace, synchronous: ``FileStorage`` runs each in a worker thread.

Every change to a job happens under its stripe lock (``_locks``) and follows
the rules stated at the top of ``_storage.py``: the record is the truth, the
entry file follows it, and a half-done change is repaired by ``settle``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace

from jobqueue import Claim, CorruptDataError, EventKind, JobState, StorageEvent, now_ms

from . import _names as names
from ._atomic import (
    create_empty,
    named,
    read_bytes,
    rename_if_exists,
    unlink_if_exists,
    write_atomic,
)
from ._events import EventLog
from ._layout import Layout
from ._listing import Listing
from ._locks import StripeLocks
from ._records import Record, pack_record, unpack_record

__all__ = ["MAX_TIMESTAMP_MS", "SpaceCore", "later"]

_log = logging.getLogger("jobqueue.file")

MAX_TIMESTAMP_MS = 10**15 - 1
"""Deadlines are capped here (year 33658, the widest run_at a scheduled/ name holds): a huge TTL
means "forever", not an overflow."""


def later(now: int, ms: int) -> int:
    """``now + ms``, capped at ``MAX_TIMESTAMP_MS``."""
    return min(now + ms, MAX_TIMESTAMP_MS)


class SpaceCore:
    """One namespace's directory, with the queue operations of the storage contract on it."""

    def __init__(self, layout: Layout, durable: bool) -> None:
        self.layout = layout
        self.durable = durable
        self.locks = StripeLocks(layout.locks)
        self.log = EventLog(layout.events, os.path.join(layout.locks, "events"))
        self._queue = Listing(layout.queue)
        self._scheduled = Listing(layout.scheduled)
        self._bad: set[str] = set()
        self._dir_fds: dict[str, int] = {}

    def close(self) -> None:
        """Close the lock and log files this namespace keeps open."""
        self.locks.close()
        self.log.close()
        for fd in self._dir_fds.values():
            os.close(fd)
        self._dir_fds.clear()

    def refresh_listings(self) -> None:
        """Forget the cached listings: another process changed the queue or the schedule."""
        self._queue.invalidate()
        self._scheduled.invalidate()

    # ----------------------------------------------------------------- records

    def read(self, key: str) -> Record | None:
        """The record of ``key`` as stored (expired or not); ``CorruptDataError`` when unreadable."""
        path = self.layout.job(key)
        data = read_bytes(path)
        return None if data is None else unpack_record(data, path)

    def read_entry(self, key: str, found: str) -> tuple[Record | None, bool]:
        """The record behind entry ``found``, and False (logged once) when it is unreadable.

        The entry of an unreadable record is skipped and the file left where
        it is, for an operator to inspect: ``get`` keeps raising
        ``CorruptDataError`` naming it, and the other jobs go on.
        """
        try:
            record = self.read(key)
        except CorruptDataError as exc:
            if found not in self._bad:
                self._bad.add(found)
                _log.error("skipping job entry %s: %s", found, exc)
            return None, False
        self._bad.discard(found)
        return record, True

    def readable(self, key: str, found: str) -> bool:
        """False (logged once) when the record behind entry ``found`` is unreadable."""
        return self.read_entry(key, found)[1]

    def live(self, key: str, now: int) -> Record | None:
        """The record of ``key`` unless it is absent or expired."""
        record = self.read(key)
        return record if record is not None and record.is_live(now) else None

    def write(self, key: str, record: Record, *, sync_dir: bool = False) -> None:
        """Replace the record of ``key`` atomically (``sync_dir``: the rename survives a power cut too)."""
        write_atomic(self.layout.job(key), pack_record(record), durable=self.durable)
        if sync_dir and self.durable:
            self.sync_dir(self.layout.jobs)

    def sync_dir(self, directory: str) -> None:
        """Fsync a directory through a descriptor kept open (one open per directory, not per write)."""
        fd = self._dir_fds.get(directory)
        if fd is None:
            try:
                fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                raise named(exc, directory) from exc
            kept = self._dir_fds.setdefault(directory, fd)
            if kept != fd:  # another thread opened it first
                os.close(fd)
                fd = kept
        try:
            os.fsync(fd)
        except OSError as exc:
            raise named(exc, directory) from exc

    def move(self, source: str, target: str) -> bool:
        """Rename an entry (relative paths), creating a worker's directory on first use."""
        src, dst = self.layout.path(source), self.layout.path(target)
        try:
            return rename_if_exists(src, dst)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            return rename_if_exists(src, dst)

    def settle(self, key: str, uid: str, found: str) -> Record | None:
        """Make the entry ``found`` agree with its record (caller holds the lock); return the record.

        An entry of another incarnation, or of a finished job, is removed; an
        entry elsewhere than its record says is moved there.
        """
        record = self.read(key)
        if record is None or record.uid != uid or record.entry is None:
            unlink_if_exists(self.layout.path(found))
        elif record.entry != found and self.move(found, record.entry):
            self._queue.invalidate()
            self._scheduled.invalidate()
        return record

    # ------------------------------------------------------------------- queue

    def enqueue(self, job_id: str, message: bytes, delay_ms: int) -> tuple[bool, Record | None]:
        """Store a new job unless a live one has this id: (accepted, existing record)."""
        key = names.encode_key(job_id)
        with self.locks.hold(key):
            now = now_ms()
            existing = self.live(key, now)
            if existing is not None:
                return False, existing
            uid = names.new_uid()
            if delay_ms > 0:
                entry = "scheduled/" + names.scheduled_entry(later(now, delay_ms), uid, key)
            else:
                entry = "queue/" + names.tail_entry(uid, key)
            record = Record(
                id=job_id,
                state=JobState.QUEUED,
                message=message,
                created_at=now,
                updated_at=now,
                uid=uid,
                entry=entry,
                run_at=later(now, delay_ms) if delay_ms > 0 else None,
            )
            # Entry first: a crash in between leaves an entry no record claims, dropped on sight.
            create_empty(self.layout.path(entry))
            try:
                self.write(key, record)
            except OSError:
                unlink_if_exists(self.layout.path(entry))  # a full disk, say: leave no stray behind
                raise
            if self.durable:
                self.sync_dir(os.path.dirname(self.layout.path(entry)))
                self.sync_dir(self.layout.jobs)
        if delay_ms > 0:
            self._scheduled.invalidate()
        self.log.publish([StorageEvent(EventKind.ENQUEUED, job_id, now)])
        return True, None

    def promote_due(self) -> int | None:
        """Move due scheduled jobs to the tail of the queue; return the next due time (None: none)."""
        now = now_ms()
        for name in self._scheduled.names():
            parsed = names.parse_entry(name, names.SCHEDULED_PREFIX)
            if parsed is None:
                continue
            run_at = int(parsed.prefix)
            if run_at > now:
                return run_at
            found = "scheduled/" + name
            with self.locks.hold(parsed.key):
                record, ok = self.read_entry(parsed.key, found)
                if not ok:
                    continue
                if record is None or record.uid != parsed.uid or record.entry != found:
                    self.settle(parsed.key, parsed.uid, found)
                    continue
                entry = "queue/" + names.tail_entry(parsed.uid, parsed.key)
                self.write(
                    parsed.key,
                    replace(record, state=JobState.QUEUED, run_at=None, entry=entry, updated_at=now),
                )
                self.move(found, entry)
            self._scheduled.invalidate()
        return None

    def claim(self, worker_id: str, lease_ms: int, limit: int) -> list[Claim]:
        """Claim up to ``limit`` queued jobs for ``worker_id``, oldest first.

        An entry whose lock is busy (most likely another process claiming it)
        is passed over at first and tried again, waiting for the lock, once
        the others are done, so claimers do not queue up behind each other.
        """
        claims: list[Claim] = []
        busy: list[str] = []
        worker_key = names.encode_key(worker_id)
        refreshed = False
        while len(claims) < limit:
            name = self._queue.pop(refresh=not refreshed)
            if name is None:
                if refreshed:
                    break
                refreshed = True  # list once more: other processes may have added jobs
                continue
            outcome = self._claim_one(name, worker_id, worker_key, lease_ms, wait=False)
            if outcome == "busy":
                busy.append(name)
            elif isinstance(outcome, Claim):
                claims.append(outcome)
        for name in busy:
            if len(claims) >= limit:
                break
            outcome = self._claim_one(name, worker_id, worker_key, lease_ms, wait=True)
            if isinstance(outcome, Claim):
                claims.append(outcome)
        now = now_ms()
        self.log.publish([StorageEvent(EventKind.PROCESSING, claim.id, now, worker_id) for claim in claims])
        return claims

    def _claim_one(
        self, name: str, worker_id: str, worker_key: str, lease_ms: int, *, wait: bool
    ) -> Claim | str | None:
        """Claim the job of ``queue/<name>``: a Claim, ``"busy"`` (lock taken, ``wait`` False) or None."""
        parsed = names.parse_entry(name, names.QUEUE_PREFIX)
        if parsed is None:
            return None
        found = "queue/" + name
        with self.locks.try_hold(parsed.key) if not wait else _held(self.locks.hold(parsed.key)) as held:
            if not held:
                return "busy"
            record, ok = self.read_entry(parsed.key, found)
            if not ok:
                self._queue.skip.add(name)
                return None
            now = now_ms()
            if (
                record is None
                or record.uid != parsed.uid
                or record.entry != found
                or not record.is_live(now)
                or record.state is not JobState.QUEUED
            ):
                self.settle(parsed.key, parsed.uid, found)
                return None
            entry = f"processing/{worker_key}/{names.processing_entry(parsed.uid, parsed.key)}"
            # Entry first: until the record says so, the job is still queued (settle moves it back).
            if not self.move(found, entry):
                return None
            claimed = replace(
                record,
                state=JobState.PROCESSING,
                worker_id=worker_id,
                attempts=record.attempts + 1,
                lease_until=later(now, lease_ms),
                entry=entry,
                abort=False,
                updated_at=now,
            )
            try:
                self.write(parsed.key, claimed)
            except OSError:
                self.move(entry, found)  # the job stays queued, as its record says
                raise
        return Claim(record.id, record.message, claimed.attempts)

    def remove(self, key: str, record: Record) -> None:
        """Delete a job's record, then its entry (caller holds the lock)."""
        unlink_if_exists(self.layout.job(key))
        if record.entry is not None:
            unlink_if_exists(self.layout.path(record.entry))

    def cancel(self, job_id: str, *, abort: bool = False) -> JobState | None:
        """Cancel a job that has not started (``abort``: flag a processing one); return its state."""
        key = names.encode_key(job_id)
        event: StorageEvent | None = None
        with self.locks.hold(key):
            now = now_ms()
            record = self.live(key, now)
            if record is None:
                return None
            if record.state in (JobState.QUEUED, JobState.FAILING):
                self.remove(key, record)
                event = StorageEvent(EventKind.CANCELLED, job_id, now)
            elif record.state is JobState.FAILED and not abort:
                self.remove(key, record)
            elif record.state is JobState.PROCESSING and abort:
                self.write(key, replace(record, abort=True))
                event = StorageEvent(EventKind.ABORT, job_id, now, record.worker_id)
        if event is not None:
            self.log.publish([event])
        return record.state


@contextmanager
def _held(lock: AbstractContextManager[None]) -> Iterator[bool]:
    """A blocking lock shaped like ``StripeLocks.try_hold``: always held."""
    with lock:
        yield True
