"""The data behind ``MemoryStorage``: one ``MemoryStore`` per store, one ``NamespaceState`` per namespace.

Every method here is synchronous, so each storage operation that calls them
is atomic with respect to the event loop. Scheduled jobs and result expiry
live in heaps with lazy deletion: an entry is acted on only when the record
still carries the same deadline, so cancelling or re-enqueueing never has to
search a heap.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from dataclasses import dataclass, replace

from .._contract.storage import Channel, EventKind, JobRecord, StorageEvent, WorkerRecord
from .._types import JobState

__all__ = ["MemoryStore", "NamespaceState", "Subscriber"]


class Subscriber:
    """One ``subscribe`` context: an unbounded queue of events, iterated until closed."""

    def __init__(self, channels: frozenset[Channel]) -> None:
        self.channels = channels
        self._queue: asyncio.Queue[StorageEvent | None] = asyncio.Queue()
        self._closed = False

    def deliver(self, event: StorageEvent, channel: Channel) -> None:
        if channel in self.channels and not self._closed:
            self._queue.put_nowait(event)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    def __aiter__(self) -> Subscriber:
        return self

    async def __anext__(self) -> StorageEvent:
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)  # keep later __anext__ calls ending too
            raise StopAsyncIteration
        return event


@dataclass(frozen=True, slots=True)
class _Registration:
    last_seen: int
    expires_at: int


class NamespaceState:
    """Jobs, queue, schedule, workers, locks and subscribers of one namespace."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobRecord] = {}
        # Invariant: ``ready`` holds the id of every queued job with no run_at, once, in claim order.
        self.ready: deque[str] = deque()
        self.processing: dict[str, dict[str, None]] = {}  # worker -> ordered set of job ids
        self.aborts: set[str] = set()
        self.workers: dict[str, _Registration] = {}
        self.locks: dict[str, tuple[str, int]] = {}
        self.subscribers: list[Subscriber] = []
        self._schedule: list[tuple[int, int, str]] = []
        self._expiry: list[tuple[int, int, str]] = []
        self._waiters: set[asyncio.Future[None]] = set()
        self._seq = itertools.count()

    # ------------------------------------------------------------ time passing

    def sweep(self, now: int) -> None:
        """Drop expired records and move due scheduled jobs to the queue."""
        while self._expiry and self._expiry[0][0] <= now:
            at, _, job_id = heapq.heappop(self._expiry)
            record = self.jobs.get(job_id)
            if record is not None and record.expires_at == at:
                self.drop(job_id)
        promoted = False
        while self._schedule and self._schedule[0][0] <= now:
            run_at, _, job_id = heapq.heappop(self._schedule)
            record = self.jobs.get(job_id)
            if record is None or record.run_at != run_at:
                continue
            self.jobs[job_id] = replace(record, state=JobState.QUEUED, run_at=None, updated_at=now)
            self.ready.append(job_id)
            promoted = True
        if promoted:
            self.wake()

    def next_run_at(self) -> int | None:
        """The earliest run_at among scheduled jobs (stale heap entries are discarded)."""
        while self._schedule:
            run_at, _, job_id = self._schedule[0]
            record = self.jobs.get(job_id)
            if record is not None and record.run_at == run_at:
                return run_at
            heapq.heappop(self._schedule)
        return None

    def schedule(self, record: JobRecord) -> None:
        assert record.run_at is not None
        self.jobs[record.id] = record
        heapq.heappush(self._schedule, (record.run_at, next(self._seq), record.id))
        self.wake()  # blocked dequeues recompute how long to wait

    def expire_at(self, record: JobRecord) -> None:
        assert record.expires_at is not None
        self.jobs[record.id] = record
        heapq.heappush(self._expiry, (record.expires_at, next(self._seq), record.id))

    # ------------------------------------------------------------------- jobs

    def owned(self, job_id: str, worker_id: str) -> JobRecord | None:
        """The record when the job is processing under ``worker_id``."""
        record = self.jobs.get(job_id)
        if record is None or record.state is not JobState.PROCESSING or record.worker_id != worker_id:
            return None
        return record

    def unhold(self, job_id: str, worker_id: str | None) -> None:
        """Remove a job from its worker's processing set."""
        if worker_id is None:
            return
        held = self.processing.get(worker_id)
        if held is not None:
            held.pop(job_id, None)
            if not held:
                del self.processing[worker_id]

    def drop(self, job_id: str) -> JobRecord | None:
        """Remove every trace of a job."""
        record = self.jobs.pop(job_id, None)
        if record is None:
            return None
        if record.state is JobState.QUEUED and record.run_at is None:
            self.ready.remove(job_id)
        elif record.state is JobState.PROCESSING:
            self.unhold(job_id, record.worker_id)
        self.aborts.discard(job_id)
        return record

    # ---------------------------------------------------------------- workers

    def register(self, worker_id: str, now: int, ttl_ms: int) -> None:
        self.workers[worker_id] = _Registration(now, now + ttl_ms)

    def unregister(self, worker_id: str, now: int) -> None:
        registration = self.workers.pop(worker_id, None)
        if registration is not None and worker_id in self.processing:
            # Jobs it still holds stay visible (and recoverable) under a lapsed registration.
            self.workers[worker_id] = replace(registration, expires_at=min(registration.expires_at, now))

    def worker_records(self, now: int) -> list[WorkerRecord]:
        for worker_id, registration in list(self.workers.items()):
            if registration.expires_at <= now and worker_id not in self.processing:
                del self.workers[worker_id]
        records: list[WorkerRecord] = []
        for worker_id in sorted(self.workers.keys() | self.processing.keys()):
            registration = self.workers.get(worker_id, _Registration(0, 0))
            jobs = tuple(self.processing.get(worker_id, ()))
            records.append(WorkerRecord(worker_id, registration.last_seen, registration.expires_at, jobs))
        return records

    def is_empty(self, now: int) -> bool:
        self.sweep(now)
        return not self.jobs and not self.worker_records(now)

    # ----------------------------------------------------- waiting and events

    async def wait(self, seconds: float) -> None:
        """Wait until ``wake`` is called or ``seconds`` pass."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait((waiter,), timeout=seconds)
        finally:
            self._waiters.discard(waiter)
            if not waiter.done():
                waiter.cancel()

    def wake(self) -> None:
        """Wake every blocked dequeue: a job became ready, or the schedule changed."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def publish(
        self,
        kind: EventKind,
        job_id: str,
        at: int,
        worker_id: str | None = None,
        data: bytes | None = None,
    ) -> None:
        event = StorageEvent(kind=kind, job_id=job_id, at=at, worker_id=worker_id, data=data)
        for subscriber in self.subscribers:
            for channel in kind.channels:
                subscriber.deliver(event, channel)

    def close(self) -> None:
        """The store lost its last connection: end subscriptions, wake blocked dequeues."""
        for subscriber in self.subscribers:
            subscriber.close()
        self.wake()


class MemoryStore:
    """What every view of one ``MemoryStorage`` shares: the namespaces and the connection count."""

    def __init__(self) -> None:
        self.namespaces: dict[str, NamespaceState] = {}
        self.refs = 0

    def state(self, name: str) -> NamespaceState:
        state = self.namespaces.get(name)
        if state is None:
            state = self.namespaces[name] = NamespaceState()
        return state

    def close(self) -> None:
        for state in self.namespaces.values():
            state.close()
