"""Recovery, job state, workers, monitoring and the TTL sweep of one namespace (synchronous)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace

import msgpack
from jobqueue import (
    CorruptDataError,
    EventKind,
    JobPage,
    JobState,
    Stalled,
    StorageEvent,
    TtlOutcome,
    WorkerRecord,
    now_ms,
    page_jobs,
)

from . import _names as names
from ._atomic import (
    TEMP_PREFIX,
    clean_temp_files,
    create_empty,
    named,
    read_bytes,
    unlink_if_exists,
    write_atomic,
)
from ._records import Record
from ._space import later
from ._worker_ops import WorkerOps

__all__ = ["Space"]

_log = logging.getLogger("jobqueue.file")


class Space(WorkerOps):
    """One namespace's directory: the queue operations plus state, workers and monitoring."""

    # ---------------------------------------------------------------- recovery

    def processing_entries(self) -> list[tuple[str, names.EntryName]]:
        """Every entry under ``processing/``, as (relative path, parsed name)."""
        found: list[tuple[str, names.EntryName]] = []
        try:
            workers = os.listdir(self.layout.processing)
        except OSError as exc:
            raise named(exc, self.layout.processing) from exc
        for worker_key in workers:
            try:
                entries = os.listdir(self.layout.worker_dir(worker_key))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in entries:
                parsed = names.parse_entry(name, names.PROCESSING_PREFIX)
                if parsed is not None:
                    found.append((f"processing/{worker_key}/{name}", parsed))
        return found

    def recover_stalled(self) -> list[Stalled]:
        """Requeue, at the head, every job whose lease expired; repair half-done moves on the way."""
        now = now_ms()
        expired: list[tuple[int, str, str, str]] = []
        for found, parsed in self.processing_entries():
            if not self.readable(parsed.key, found):
                continue
            with self.locks.hold(parsed.key):
                record = self.read(parsed.key)
                if not _processing_here(record, found, now):
                    self.settle(parsed.key, parsed.uid, found)
                elif record is not None and (record.lease_until is None or record.lease_until <= now):
                    expired.append((record.lease_until or 0, parsed.key, parsed.uid, found))
        stalled: list[Stalled] = []
        events: list[StorageEvent] = []
        # Latest lease first, each to the head: the job that stalled first is claimed first.
        for _, key, uid, found in sorted(expired, reverse=True):
            with self.locks.hold(key):
                record = self.read(key)
                if record is None or record.uid != uid or record.entry != found:
                    continue
                if record.state is not JobState.PROCESSING or (record.lease_until or 0) > now:
                    continue
                worker_id = record.worker_id or ""
                self.requeue_head(key, record, now, record.attempts)
            stalled.append(Stalled(record.id, worker_id))
        stalled.reverse()
        for item in stalled:
            events.append(StorageEvent(EventKind.STALLED, item.id, now, item.worker_id))
            events.append(StorageEvent(EventKind.REQUEUED, item.id, now, item.worker_id))
        self.log.publish(events)
        return stalled

    def next_lease_expiry(self) -> int | None:
        """Milliseconds until the earliest lease of a processing job expires."""
        leases: list[int] = []
        for found, parsed in self.processing_entries():
            record = self.read(parsed.key) if self.readable(parsed.key, found) else None
            if record is not None and record.entry == found and record.state is JobState.PROCESSING:
                leases.append(record.lease_until or 0)
        return min(leases) - now_ms() if leases else None

    # --------------------------------------------------------------- job state

    def get(self, job_id: str) -> Record | None:
        """The live record of a job."""
        return self.live(names.encode_key(job_id), now_ms())

    def delete(self, job_id: str) -> bool:
        """Remove every trace of a job that is not processing."""
        key = names.encode_key(job_id)
        with self.locks.hold(key):
            record = self.read(key)
            if record is None or record.state is JobState.PROCESSING:
                return False
            self.remove(key, record)
            return record.is_live(now_ms())

    def update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        """Make a terminal record expire ``ttl_ms`` from now."""
        key = names.encode_key(job_id)
        with self.locks.hold(key):
            now = now_ms()
            record = self.live(key, now)
            if record is None:
                return "not_found"
            if not record.state.is_terminal:
                return "not_terminal"
            self.write(key, replace(record, expires_at=later(now, ttl_ms), updated_at=now))
            return "updated"

    def retry_failed(self, job_id: str) -> bool:
        """Queue a failed job again, attempts reset, as a new incarnation."""
        key = names.encode_key(job_id)
        with self.locks.hold(key):
            now = now_ms()
            record = self.live(key, now)
            if record is None or record.state is not JobState.FAILED:
                return False
            uid = names.new_uid()
            entry = "queue/" + names.tail_entry(uid, key)
            create_empty(self.layout.path(entry))
            self.write(
                key,
                replace(
                    record,
                    state=JobState.QUEUED,
                    attempts=0,
                    error=None,
                    result=None,
                    expires_at=None,
                    worker_id=None,
                    uid=uid,
                    entry=entry,
                    updated_at=now,
                ),
                sync_dir=True,
            )
        self.log.publish([StorageEvent(EventKind.ENQUEUED, job_id, now)])
        return True

    # ------------------------------------------------------------------ scans

    def records(self) -> Iterator[tuple[str, Record]]:
        """Every readable record, expired ones included; corrupt files are logged and skipped."""
        try:
            keys = os.listdir(self.layout.jobs)
        except OSError as exc:
            raise named(exc, self.layout.jobs) from exc
        for key in keys:
            if key.startswith("."):
                continue
            try:
                record = self.read(key)
            except CorruptDataError as exc:
                _log.error("skipping an unreadable job record: %s", exc)
                continue
            if record is not None:
                yield key, record

    def counts(self) -> dict[JobState, int]:
        """Live jobs per state."""
        now = now_ms()
        counts = dict.fromkeys(JobState, 0)
        for _, record in self.records():
            if record.is_live(now):
                counts[record.state] += 1
        return counts

    def list_jobs(self, state: JobState | None, prefix: str, cursor: str | None, limit: int) -> JobPage:
        """A page of live jobs, newest first (ties by id, descending)."""
        now = now_ms()
        live = (record.public() for _, record in self.records() if record.is_live(now))
        return page_jobs(live, state=state, prefix=prefix, cursor=cursor, limit=limit)

    def purge(self, states: Sequence[JobState]) -> int:
        """Delete every live job in the given (terminal) states."""
        wanted = set(states)
        removed = 0
        for key, record in list(self.records()):
            if record.state not in wanted:
                continue
            with self.locks.hold(key):
                current = self.read(key)
                if current is not None and current.state in wanted and current.is_live(now_ms()):
                    self.remove(key, current)
                    removed += 1
        return removed

    def sweep(self) -> int:
        """Delete expired records, stale temp files and lapsed workers; return how many records went."""
        removed = 0
        for key, record in list(self.records()):
            if record.is_live(now_ms()):
                continue
            with self.locks.hold(key):
                current = self.read(key)
                if current is not None and not current.is_live(now_ms()):
                    self.remove(key, current)
                    removed += 1
        self.clean_temp_files()
        self.list_workers()  # prunes lapsed workers that hold nothing, and their directories
        return removed

    def clean_temp_files(self) -> None:
        """Remove temp files that dead processes left behind."""
        for directory in (self.layout.dir, self.layout.jobs, self.layout.workers):
            clean_temp_files(directory)

    def repair(self) -> None:
        """Bring every entry under ``processing/`` in line with its record (run at connect)."""
        self.clean_temp_files()
        for found, parsed in self.processing_entries():
            if not self.readable(parsed.key, found):
                continue
            with self.locks.hold(parsed.key):
                record = self.read(parsed.key)
                if record is None or record.entry != found or record.state is not JobState.PROCESSING:
                    self.settle(parsed.key, parsed.uid, found)

    def is_empty(self) -> bool:
        """True when the namespace holds no live job and no worker."""
        now = now_ms()
        return not any(record.is_live(now) for _, record in self.records()) and not self.list_workers()

    # ---------------------------------------------------------------- workers

    def register_worker(self, worker_id: str, ttl_ms: int) -> None:
        """Write or refresh a worker's registration."""
        key = names.encode_key(worker_id)
        with self.locks.hold("worker:" + key):
            now = now_ms()
            data = msgpack.packb([worker_id, now, later(now, ttl_ms)], use_bin_type=True)
            write_atomic(self.layout.worker_file(key), data, durable=False)

    def unregister_worker(self, worker_id: str) -> None:
        """Remove a registration; a worker that still holds jobs stays listed, lapsed."""
        key = names.encode_key(worker_id)
        with self.locks.hold("worker:" + key):
            registration = self._registration(key)
            if registration is not None and self._held(key):
                now = now_ms()
                data = msgpack.packb(
                    [worker_id, registration[1], min(registration[2], now)], use_bin_type=True
                )
                write_atomic(self.layout.worker_file(key), data, durable=False)
            else:
                unlink_if_exists(self.layout.worker_file(key))
                self._drop_worker_dir(key)

    def _drop_worker_dir(self, key: str) -> None:
        """Remove an empty ``processing/<worker>/`` (a later claim by that worker creates it again)."""
        with contextlib.suppress(OSError):  # gone already, or not empty: jobs or strays still there
            os.rmdir(self.layout.worker_dir(key))

    def _registration(self, key: str) -> tuple[str, int, int] | None:
        path = self.layout.worker_file(key)
        data = read_bytes(path)
        if data is None:
            return None
        try:
            worker_id, last_seen, expires_at = msgpack.unpackb(data, raw=False)
            if not (
                isinstance(worker_id, str) and isinstance(last_seen, int) and isinstance(expires_at, int)
            ):
                raise ValueError("fields of the wrong type")
        except Exception as exc:
            raise CorruptDataError(f"corrupt worker file {path}: {exc}") from exc
        return worker_id, last_seen, expires_at

    def _held(self, worker_key: str) -> list[Record]:
        """Records of the jobs processing under this worker, in claim order."""
        directory = self.layout.worker_dir(worker_key)
        try:
            entries = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return []
        held: list[Record] = []
        for name in entries:
            parsed = names.parse_entry(name, names.PROCESSING_PREFIX)
            if parsed is None:
                continue
            try:
                record = self.read(parsed.key)
            except CorruptDataError:
                continue
            found = f"processing/{worker_key}/{name}"
            if record is not None and record.entry == found and record.state is JobState.PROCESSING:
                held.append(record)
        held.sort(key=lambda record: record.updated_at)
        return held

    def list_workers(self) -> list[WorkerRecord]:
        """Registered workers, and lapsed ones that still hold jobs, by id."""
        now = now_ms()
        found: dict[str, WorkerRecord] = {}
        keys = set(_listdir(self.layout.workers)) | set(_listdir(self.layout.processing))
        for key in keys:
            if key.startswith(TEMP_PREFIX) or key.startswith("."):
                continue
            held = self._held(key)
            registration = self._registration(key)
            if not held and (registration is None or registration[2] <= now):
                with self.locks.hold("worker:" + key):  # a lapsed worker that holds nothing: forget it
                    current = self._registration(key)
                    if (current is None or current[2] <= now_ms()) and not self._held(key):
                        unlink_if_exists(self.layout.worker_file(key))
                        self._drop_worker_dir(key)
                continue
            worker_id = registration[0] if registration is not None else held[0].worker_id or ""
            last_seen, expires_at = (registration[1], registration[2]) if registration is not None else (0, 0)
            found[worker_id] = WorkerRecord(worker_id, last_seen, expires_at, tuple(r.id for r in held))
        return [found[worker_id] for worker_id in sorted(found)]


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise named(exc, directory) from exc


def _processing_here(record: Record | None, found: str, now: int) -> bool:
    """True when ``record`` is a live processing job whose entry is ``found``."""
    return (
        record is not None
        and record.entry == found
        and record.is_live(now)
        and record.state is JobState.PROCESSING
    )
