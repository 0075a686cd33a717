"""The data behind ``MemoryStorage``: one ``MemoryStore`` per store, one ``NamespaceState`` per namespace.

Every method here is synchronous, so each storage operation that calls them
is atomic with respect to the event loop. Records change only through
``apply``, which stores what a ``rules`` function decided. The ready queue,
the schedule and result expiry are heaps with lazy deletion: an entry is
acted on only when the record still matches it, so cancelling or
re-enqueueing never has to search a heap.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass

from .._contract import rules
from .._contract.events import MAX_PENDING_EVENTS, EventBuffer
from .._contract.records import Channel, EventKind, JobRecord, StorageEvent, WorkerRecord
from .._contract.rules import Place, Step
from .._types import JobState
from .table import JobTable

__all__ = ["MemoryStore", "NamespaceState", "Subscriber"]


class Subscriber(EventBuffer[StorageEvent]):
    """One ``subscribe`` context: the events of its channels, bounded (see ``EventBuffer``)."""

    def __init__(self, channels: frozenset[Channel], limit: int = MAX_PENDING_EVENTS) -> None:
        super().__init__(limit, source="memory")
        self.channels = channels


@dataclass(frozen=True, slots=True)
class _Registration:
    last_seen: int
    expires_at: int
    info: bytes = b""


class NamespaceState:
    """Jobs, queue, schedule, workers, locks and subscribers of one namespace."""

    def __init__(self) -> None:
        self.jobs = JobTable()
        self.processing: dict[str, dict[str, None]] = {}  # worker -> ordered set of job ids
        self.workers: dict[str, _Registration] = {}
        self.locks: dict[str, tuple[str, int]] = {}
        self.subscribers: list[Subscriber] = []
        self._listeners: dict[Channel, list[Subscriber]] = {}  # the subscribers of each channel
        # ready heap: (claim_order..., id); valid while ``_ready_seq[id]`` is that seq
        self._ready: list[tuple[int, int, str]] = []
        self._ready_seq: dict[str, int] = {}
        self._tail = itertools.count(1)
        self._head = itertools.count(-1, -1)  # head inserts: each one before every earlier entry
        self._schedule: list[tuple[int, int, str]] = []
        self._expiry: list[tuple[int, int, str]] = []
        self._waiters: set[asyncio.Future[None]] = set()
        self._seq = itertools.count()

    # ------------------------------------------------------------------ apply

    def apply(self, job_id: str, step: Step, now: int, worker_id: str | None = None) -> None:
        """Store what a rule decided: the record, its place, and its event."""
        record = step.record
        old = self.jobs.set(job_id, record)
        if old is not None:
            self._ready_seq.pop(job_id, None)
            if old.state is JobState.PROCESSING:
                self._unhold(job_id, old.worker_id)
        if record is not None:
            self._place(record, step.place)
        if step.event is not None:
            self.publish(step.event, job_id, now, worker_id, step.data)

    def _place(self, record: JobRecord, place: Place) -> None:
        if place is Place.TAIL or place is Place.HEAD:
            seq = next(self._tail if place is Place.TAIL else self._head)
            self._ready_seq[record.id] = seq
            heapq.heappush(self._ready, (*rules.claim_order(record, seq), record.id))
            self.wake()
        elif place is Place.SCHEDULE:
            assert record.run_at is not None
            heapq.heappush(self._schedule, (record.run_at, next(self._seq), record.id))
            self.wake()  # blocked dequeues recompute how long to wait
        elif record.state is JobState.PROCESSING:
            assert record.worker_id is not None
            self.processing.setdefault(record.worker_id, {})[record.id] = None
        if record.expires_at is not None:
            heapq.heappush(self._expiry, (record.expires_at, next(self._seq), record.id))

    def _unhold(self, job_id: str, worker_id: str | None) -> None:
        held = self.processing.get(worker_id or "")
        if held is not None:
            held.pop(job_id, None)
            if not held:
                del self.processing[worker_id or ""]

    def pop_ready(self) -> JobRecord | None:
        """The next job to claim (``rules.claim_order``), taken off the ready queue."""
        while self._ready:
            _, seq, job_id = heapq.heappop(self._ready)
            if self._ready_seq.get(job_id) == seq:
                del self._ready_seq[job_id]
                return self.jobs.live(job_id)
        return None

    # ------------------------------------------------------------ time passing

    def sweep(self, now: int) -> None:
        """Drop expired records and lapsed workers; promote due scheduled jobs (``rules.promote``)."""
        while self._expiry and self._expiry[0][0] <= now:
            at, _, job_id = heapq.heappop(self._expiry)
            record = self.jobs.get(job_id)
            if record is not None and record.expires_at == at and not rules.is_live(record, now):
                self.apply(job_id, Step(None), now)
        while self._schedule and self._schedule[0][0] <= now:
            run_at, _, job_id = heapq.heappop(self._schedule)
            record = self.jobs.get(job_id)
            if record is not None and record.run_at == run_at and rules.is_due(record, now):
                self.apply(job_id, rules.promote(record, now), now)
        for worker_id, registration in list(self.workers.items()):
            if registration.expires_at <= now and worker_id not in self.processing:
                del self.workers[worker_id]

    def next_run_at(self) -> int | None:
        """The earliest run_at among scheduled jobs (stale heap entries are discarded)."""
        while self._schedule:
            run_at, _, job_id = self._schedule[0]
            record = self.jobs.get(job_id)
            if record is not None and record.run_at == run_at:
                return run_at
            heapq.heappop(self._schedule)
        return None

    def leases(self) -> list[JobRecord]:
        """Records of every processing job."""
        return [self.jobs.live(job_id) for held in self.processing.values() for job_id in held]

    # ---------------------------------------------------------------- workers

    def register(self, worker_id: str, now: int, ttl_ms: int, info: bytes) -> None:
        """Register or refresh a worker with its info; publish ``rules.register_worker``'s event."""
        previous = self.workers.get(worker_id)
        self.workers[worker_id] = _Registration(now, rules.later(now, ttl_ms), info)
        event = rules.register_worker(previous.expires_at if previous else None, now)
        if event is not None:
            self.publish(event, "", now, worker_id)

    def unregister(self, worker_id: str, now: int) -> None:
        """Drop a registration; publish ``rules.unregister_worker``'s event."""
        registration = self.workers.pop(worker_id, None)
        if registration is None:
            return
        if worker_id in self.processing:
            # Jobs it still holds stay visible (and recoverable) under a lapsed registration.
            self.workers[worker_id] = _Registration(
                registration.last_seen, min(registration.expires_at, now), registration.info
            )
        event = rules.unregister_worker(registration.expires_at, now)
        if event is not None:
            self.publish(event, "", now, worker_id)

    def worker_records(self) -> list[WorkerRecord]:
        records: list[WorkerRecord] = []
        for worker_id in sorted(self.workers.keys() | self.processing.keys()):
            registration = self.workers.get(worker_id, _Registration(0, 0))
            jobs = tuple(self.processing.get(worker_id, ()))
            records.append(
                WorkerRecord(
                    worker_id, registration.last_seen, registration.expires_at, jobs, registration.info
                )
            )
        return records

    def is_empty(self, now: int) -> bool:
        self.sweep(now)
        return not self.jobs and not self.workers and not self.processing

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

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)
        for channel in subscriber.channels:
            self._listeners.setdefault(channel, []).append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.remove(subscriber)
        for channel in subscriber.channels:
            listeners = self._listeners[channel]
            listeners.remove(subscriber)
            if not listeners:
                del self._listeners[channel]

    def publish(
        self, kind: EventKind, job_id: str, at: int, worker_id: str | None = None, data: bytes | None = None
    ) -> None:
        """Deliver an event to the subscribers of its channels; built only when one listens."""
        event = None
        for channel in kind.channels:
            listeners = self._listeners.get(channel)
            if listeners:
                event = event or StorageEvent(kind=kind, job_id=job_id, at=at, worker_id=worker_id, data=data)
                for subscriber in listeners:
                    subscriber.put(event)

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
