"""``MemoryStorage``: the storage contract in one process, without persistence.

Each operation runs without an ``await`` between reading and writing, so it
is atomic with respect to every other task on the loop. Blocking ``dequeue``
waits on a future that enqueues wake (no polling); expired records are swept
lazily at the start of every call, so nothing needs a background task.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from typing import Self
from urllib.parse import urlsplit

from .._durations import now_ms
from .._errors import StorageError
from .admin import MemoryAdminMixin
from .state import MemoryStore, NamespaceState, Subscriber
from .._contract.storage import (
    DEFAULT_NAMESPACE,
    Channel,
    Claim,
    EnqueueOutcome,
    EventKind,
    JobRecord,
    LeaderLock,
    Stalled,
    Storage,
    StorageEvent,
    TtlOutcome,
    WorkerRecord,
)
from .._types import JobState
from .._urls import parse_query
from .._contract.codecs import INLINE_RESULT_LIMIT

__all__ = ["MemoryStorage"]


class MemoryStorage(MemoryAdminMixin, Storage, LeaderLock):
    """A storage that keeps everything in this process's memory.

    ``MemoryStorage()`` is the ``default`` namespace of a new, empty store;
    ``namespace(name)`` views share that store. Useful for tests, demos and
    single-process applications; nothing survives the process.
    """

    def __init__(self) -> None:
        self._store = MemoryStore()
        self._name = DEFAULT_NAMESPACE

    @classmethod
    def from_url(cls, url: str) -> MemoryStorage:
        """Build a storage from ``memory://`` (which takes no host, path or options).

        Raises:
            TypeError: ``url`` is not a string.
            ValueError: not a ``memory://`` URL, or it carries a host, a path or options.
        """
        if not isinstance(url, str):
            raise TypeError(f"storage url must be a str, not {type(url).__name__}")
        parts = urlsplit(url)
        if parts.scheme.lower() != "memory":
            raise ValueError(f"not a memory:// url: {url!r}")
        if parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"memory:// takes no host or path, got {url!r}")
        parse_query(url, set())
        return cls()

    def __repr__(self) -> str:
        return f"MemoryStorage(namespace={self._name!r})"

    # ---------------------------------------------------------------- lifecycle

    @property
    def name(self) -> str:
        """The namespace this instance is bound to."""
        return self._name

    def namespace(self, name: str) -> Self:
        """Return a view on namespace ``name`` sharing this store."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"namespace name must be a non-empty str, got {name!r}")
        view = copy.copy(self)
        view._name = name
        return view

    async def connect(self) -> None:
        """Take one reference on the store (views share the count)."""
        self._store.refs += 1

    async def disconnect(self) -> None:
        """Drop one reference; the last one ends subscriptions and wakes blocked dequeues."""
        if self._store.refs <= 0:
            return
        self._store.refs -= 1
        if self._store.refs == 0:
            self._store.close()

    def _state(self) -> NamespaceState:
        if self._store.refs <= 0:
            raise StorageError(f"memory storage (namespace {self._name!r}) is not connected; call connect()")
        state = self._store.state(self._name)
        state.sweep(now_ms())
        return state

    # -------------------------------------------------------------------- queue

    async def enqueue(self, job_id: str, message: bytes, *, delay_ms: int = 0) -> EnqueueOutcome:
        """Store a new job unless one with this id exists, atomically."""
        state = self._state()
        existing = state.jobs.get(job_id)
        if existing is not None:
            return EnqueueOutcome(accepted=False, existing=existing)
        now = now_ms()
        record = JobRecord(id=job_id, state=JobState.QUEUED, message=message, created_at=now, updated_at=now)
        if delay_ms > 0:
            state.schedule(replace(record, run_at=now + delay_ms))
        else:
            state.jobs[job_id] = record
            state.ready.append(job_id)
            state.wake()
        state.publish(EventKind.ENQUEUED, job_id, now)
        return EnqueueOutcome(accepted=True)

    async def dequeue(self, worker_id: str, *, lease_ms: int, timeout_ms: int, limit: int = 1) -> list[Claim]:
        """Claim up to ``limit`` ready jobs, waiting up to ``timeout_ms`` for one."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_ms, 0) / 1000
        while True:
            state = self._state()
            now = now_ms()
            claims: list[Claim] = []
            while state.ready and len(claims) < limit:
                job_id = state.ready.popleft()
                record = state.jobs[job_id]
                state.jobs[job_id] = replace(
                    record,
                    state=JobState.PROCESSING,
                    worker_id=worker_id,
                    attempts=record.attempts + 1,
                    lease_until=now + lease_ms,
                    updated_at=now,
                )
                state.processing.setdefault(worker_id, {})[job_id] = None
                claims.append(Claim(job_id, record.message, record.attempts + 1))
                state.publish(EventKind.PROCESSING, job_id, now, worker_id)
            if claims:
                return claims
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            run_at = state.next_run_at()
            if run_at is not None:
                remaining = min(remaining, (run_at - now + 1) / 1000)
            await state.wait(remaining)

    async def renew_leases(self, worker_id: str, job_ids: Sequence[str], lease_ms: int) -> list[str]:
        """Extend the worker's leases; return the ids it must stop."""
        state = self._state()
        now = now_ms()
        stop: list[str] = []
        for job_id in job_ids:
            record = state.owned(job_id, worker_id)
            if record is None:
                stop.append(job_id)
                continue
            state.jobs[job_id] = replace(record, lease_until=now + lease_ms)
            if job_id in state.aborts:
                stop.append(job_id)
        return stop

    async def release(self, job_id: str, worker_id: str) -> bool:
        """Put a claimed job back at the head of the queue, its attempt not counted."""
        state = self._state()
        record = state.owned(job_id, worker_id)
        if record is None:
            return False
        now = now_ms()
        self._requeue(state, record, now, attempts=max(record.attempts - 1, 0))
        state.publish(EventKind.REQUEUED, job_id, now, worker_id)
        return True

    async def complete(self, job_id: str, worker_id: str, result: bytes, ttl_ms: int) -> bool:
        """Store the result and set ``completed`` when the worker still owns the job."""
        return self._finish(job_id, worker_id, JobState.COMPLETED, result, ttl_ms)

    async def fail(self, job_id: str, worker_id: str, error: bytes, ttl_ms: int) -> bool:
        """Store the error and set ``failed`` when the worker still owns the job."""
        return self._finish(job_id, worker_id, JobState.FAILED, error, ttl_ms)

    def _finish(self, job_id: str, worker_id: str, outcome: JobState, data: bytes, ttl_ms: int) -> bool:
        state = self._state()
        record = state.owned(job_id, worker_id)
        if record is None:
            return False
        now = now_ms()
        state.unhold(job_id, worker_id)
        state.aborts.discard(job_id)
        completed = outcome is JobState.COMPLETED
        state.expire_at(
            replace(
                record,
                state=outcome,
                result=data if completed else None,
                error=None if completed else data,
                lease_until=None,
                expires_at=now + ttl_ms,
                updated_at=now,
            )
        )
        inline = data if len(data) <= INLINE_RESULT_LIMIT else None
        kind = EventKind.COMPLETED if completed else EventKind.FAILED
        state.publish(kind, job_id, now, worker_id, inline)
        return True

    async def retry(self, job_id: str, worker_id: str, error: bytes, delay_ms: int) -> bool:
        """Store the error, set ``failing`` and schedule the job ``delay_ms`` from now."""
        state = self._state()
        record = state.owned(job_id, worker_id)
        if record is None:
            return False
        now = now_ms()
        state.unhold(job_id, worker_id)
        state.schedule(
            replace(
                record,
                state=JobState.FAILING,
                error=error,
                worker_id=None,
                lease_until=None,
                run_at=now + max(delay_ms, 0),
                updated_at=now,
            )
        )
        state.publish(EventKind.FAILING, job_id, now, worker_id)
        return True

    async def cancel(self, job_id: str) -> JobState | None:
        """Delete a job that has not started (and a failed one); return the state it had."""
        state = self._state()
        return self._cancel(state, job_id)

    @staticmethod
    def _cancel(state: NamespaceState, job_id: str) -> JobState | None:
        record = state.jobs.get(job_id)
        if record is None:
            return None
        if record.state in (JobState.QUEUED, JobState.FAILING):
            state.drop(job_id)
            state.publish(EventKind.CANCELLED, job_id, now_ms())
        elif record.state is JobState.FAILED:
            state.drop(job_id)
        return record.state

    async def request_abort(self, job_id: str) -> JobState | None:
        """Cancel a job that has not started, or flag a processing one; return the state it had."""
        state = self._state()
        record = state.jobs.get(job_id)
        if record is None or record.state is not JobState.PROCESSING:
            if record is not None and record.state.is_terminal:
                return record.state
            return self._cancel(state, job_id)
        state.aborts.add(job_id)
        state.publish(EventKind.ABORT, job_id, now_ms(), record.worker_id)
        return record.state

    async def recover_stalled(self) -> list[Stalled]:
        """Put every job whose lease expired back at the head of the queue."""
        state = self._state()
        now = now_ms()
        expired = sorted(
            (record.lease_until, record.id)
            for held in state.processing.values()
            for record in (state.jobs[job_id] for job_id in held)
            if record.lease_until is not None and record.lease_until <= now
        )
        stalled: list[Stalled] = []
        # Requeued at the head in reverse, so the job that stalled first is claimed first.
        for _, job_id in reversed(expired):
            record = state.jobs[job_id]
            worker_id = record.worker_id or ""
            self._requeue(state, record, now, attempts=record.attempts)
            stalled.append(Stalled(job_id, worker_id))
        stalled.reverse()
        for item in stalled:
            state.publish(EventKind.STALLED, item.id, now, item.worker_id)
            state.publish(EventKind.REQUEUED, item.id, now, item.worker_id)
        return stalled

    @staticmethod
    def _requeue(state: NamespaceState, record: JobRecord, now: int, *, attempts: int) -> None:
        state.unhold(record.id, record.worker_id)
        state.jobs[record.id] = replace(
            record, state=JobState.QUEUED, worker_id=None, attempts=attempts, lease_until=None, updated_at=now
        )
        state.ready.appendleft(record.id)
        state.wake()

    async def next_lease_expiry(self) -> int | None:
        """Milliseconds until the earliest lease expires (None: no job is processing)."""
        state = self._state()
        leases = [
            lease
            for held in state.processing.values()
            for job_id in held
            if (lease := state.jobs[job_id].lease_until) is not None
        ]
        return min(leases) - now_ms() if leases else None

    # ---------------------------------------------------------------- job state

    async def get(self, job_id: str) -> JobRecord | None:
        """The live record of a job, or None."""
        return self._state().jobs.get(job_id)

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """``get`` for many ids, in the order given."""
        jobs = self._state().jobs
        return [jobs.get(job_id) for job_id in job_ids]

    async def delete(self, job_id: str) -> bool:
        """Remove a job that is not processing; True when something was removed."""
        state = self._state()
        record = state.jobs.get(job_id)
        if record is None or record.state is JobState.PROCESSING:
            return False
        state.drop(job_id)
        return True

    async def update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        """Make a terminal record expire ``ttl_ms`` from now."""
        state = self._state()
        record = state.jobs.get(job_id)
        if record is None:
            return "not_found"
        if not record.state.is_terminal:
            return "not_terminal"
        state.expire_at(replace(record, expires_at=now_ms() + ttl_ms))
        return "updated"

    # ------------------------------------------------------------------ workers

    async def register_worker(self, worker_id: str, ttl_ms: int) -> None:
        """Register a worker or refresh its heartbeat for ``ttl_ms``."""
        self._state().register(worker_id, now_ms(), ttl_ms)

    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker's registration; jobs it holds stay recoverable."""
        self._state().unregister(worker_id, now_ms())

    async def list_workers(self) -> list[WorkerRecord]:
        """Registered workers, and lapsed ones that still hold jobs, by id."""
        return self._state().worker_records(now_ms())

    # ------------------------------------------------------------ notifications

    def subscribe(self, *channels: Channel) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        """Listen to the namespace's channels (see ``Storage.subscribe``)."""
        if not channels:
            raise ValueError("subscribe needs at least one channel")
        return self._subscription(frozenset(Channel(channel) for channel in channels))

    @asynccontextmanager
    async def _subscription(self, channels: frozenset[Channel]) -> AsyncIterator[AsyncIterator[StorageEvent]]:
        state = self._state()
        subscriber = Subscriber(channels)
        state.subscribers.append(subscriber)
        try:
            yield subscriber
        finally:
            subscriber.close()
            state.subscribers.remove(subscriber)
