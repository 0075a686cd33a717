"""What a worker does with the jobs it holds: renew, release, complete, fail, retry (synchronous)."""

from __future__ import annotations

from dataclasses import replace

from jobqueue import INLINE_RESULT_LIMIT, EventKind, JobState, StorageEvent, now_ms

from . import _names as names
from ._atomic import unlink_if_exists
from ._records import Record
from ._space import SpaceCore, later

__all__ = ["WorkerOps"]


class WorkerOps(SpaceCore):
    """The operations on a processing job, each checking that the worker still owns it."""

    def owned(self, key: str, worker_id: str, now: int) -> Record | None:
        """The record when the job is processing under ``worker_id`` (caller holds the lock)."""
        record = self.live(key, now)
        if record is None or record.state is not JobState.PROCESSING or record.worker_id != worker_id:
            return None
        return record

    def renew(self, worker_id: str, job_ids: list[str], lease_ms: int) -> list[str]:
        """Extend leases; return the ids the worker must stop."""
        stop: list[str] = []
        for job_id in job_ids:
            key = names.encode_key(job_id)
            with self.locks.hold(key):
                now = now_ms()
                record = self.owned(key, worker_id, now)
                if record is None:
                    stop.append(job_id)
                    continue
                self.write(key, replace(record, lease_until=later(now, lease_ms)))
                if record.abort:
                    stop.append(job_id)
        return stop

    def requeue_head(self, key: str, record: Record, now: int, attempts: int) -> None:
        """Put a processing job back at the head of the queue (caller holds the lock)."""
        assert record.entry is not None
        entry = "queue/" + names.head_entry(record.uid, key)
        self.write(
            key,
            replace(
                record,
                state=JobState.QUEUED,
                worker_id=None,
                lease_until=None,
                attempts=attempts,
                entry=entry,
                abort=False,
                updated_at=now,
            ),
        )
        self.move(record.entry, entry)
        self._queue.invalidate()

    def release(self, job_id: str, worker_id: str) -> bool:
        """Give a claimed job back to the head of the queue, its attempt not counted."""
        key = names.encode_key(job_id)
        with self.locks.hold(key):
            now = now_ms()
            record = self.owned(key, worker_id, now)
            if record is None:
                return False
            self.requeue_head(key, record, now, max(record.attempts - 1, 0))
        self.log.publish([StorageEvent(EventKind.REQUEUED, job_id, now, worker_id)])
        return True

    def finish(self, job_id: str, worker_id: str, state: JobState, data: bytes, ttl_ms: int) -> bool:
        """Store a result (``completed``) or an error (``failed``) for a job the worker owns."""
        key = names.encode_key(job_id)
        completed = state is JobState.COMPLETED
        with self.locks.hold(key):
            now = now_ms()
            record = self.owned(key, worker_id, now)
            if record is None or record.entry is None:
                return False
            # Record first: an entry left behind by a crash is dropped by settle.
            self.write(
                key,
                replace(
                    record,
                    state=state,
                    result=data if completed else None,
                    error=None if completed else data,
                    lease_until=None,
                    expires_at=later(now, ttl_ms),
                    entry=None,
                    abort=False,
                    updated_at=now,
                ),
                sync_dir=True,
            )
            unlink_if_exists(self.layout.path(record.entry))
        kind = EventKind.COMPLETED if completed else EventKind.FAILED
        inline = data if len(data) <= INLINE_RESULT_LIMIT else None
        self.log.publish([StorageEvent(kind, job_id, now, worker_id, inline)])
        return True

    def retry(self, job_id: str, worker_id: str, error: bytes, delay_ms: int) -> bool:
        """Store the error, set ``failing`` and schedule the job ``delay_ms`` from now."""
        key = names.encode_key(job_id)
        with self.locks.hold(key):
            now = now_ms()
            record = self.owned(key, worker_id, now)
            if record is None or record.entry is None:
                return False
            run_at = later(now, max(delay_ms, 0))
            entry = "scheduled/" + names.scheduled_entry(run_at, record.uid, key)
            self.write(
                key,
                replace(
                    record,
                    state=JobState.FAILING,
                    error=error,
                    worker_id=None,
                    lease_until=None,
                    run_at=run_at,
                    entry=entry,
                    abort=False,
                    updated_at=now,
                ),
                sync_dir=True,
            )
            self.move(record.entry, entry)
        self._scheduled.invalidate()
        self.log.publish([StorageEvent(EventKind.FAILING, job_id, now, worker_id)])
        return True
