"""``MemoryStorage``: the storage contract in one process, without persistence.

Each operation runs without an ``await`` between reading and writing, so it
is atomic with respect to every other task on the loop. Every change is a
``rules`` step applied by ``NamespaceState.apply``. Blocking ``dequeue``
waits on a future that enqueues wake (no polling); expired records and
lapsed workers are swept at the start of every call, so nothing needs a
background task.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Self
from urllib.parse import urlsplit

from .._contract import rules
from .._contract.capabilities import ControlChannel, LeaderLock, Monitoring
from .._contract.records import (
    DEFAULT_NAMESPACE,
    Channel,
    Claim,
    EnqueueOutcome,
    EventKind,
    Finish,
    JobRecord,
    NewJob,
    Recovery,
    Revoked,
    Stalled,
    StorageEvent,
    TtlOutcome,
)
from .._contract.storage import Storage
from .._durations import now_ms
from .._errors import StorageError
from .._types import JobState
from .._urls import parse_query, redact_url
from .admin import MemoryMonitoring
from .state import MemoryStore, NamespaceState, Subscriber

__all__ = ["MemoryStorage"]


class MemoryStorage(MemoryMonitoring, Storage, Monitoring, LeaderLock, ControlChannel):
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
            raise ValueError(f"not a memory:// url: {redact_url(url)!r}")
        if parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"memory:// takes no host or path, got {redact_url(url)!r}")
        parse_query(url, set())
        return cls()

    def __repr__(self) -> str:
        return f"MemoryStorage(namespace={self._name!r})"

    # ---------------------------------------------------------------- lifecycle

    @property
    def name(self) -> str:
        """The namespace this instance is bound to."""
        return self._name

    def _view(self, name: str) -> Self:
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

    def _state(self) -> tuple[NamespaceState, int]:
        if self._store.refs <= 0:
            raise StorageError(f"memory storage (namespace {self._name!r}) is not connected; call connect()")
        state = self._store.state(self._name)
        now = now_ms()
        state.sweep(now)
        return state, now

    # -------------------------------------------------------------------- queue

    async def _enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        state, now = self._state()
        outcomes: list[EnqueueOutcome] = []
        for job in jobs:
            existing = state.jobs.get(job.id)
            if existing is not None:
                outcomes.append(EnqueueOutcome(accepted=False, existing=existing))
                continue
            state.apply(job.id, rules.new_record(job, now), now)
            outcomes.append(EnqueueOutcome(accepted=True))
        return outcomes

    async def _claim(self, worker_id: str, lease_ms: int, limit: int, timeout_ms: int) -> list[Claim]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while True:
            state, now = self._state()
            claims: list[Claim] = []
            while len(claims) < limit and (record := state.pop_ready()) is not None:
                step = rules.claim(record, worker_id, now, lease_ms)
                state.apply(record.id, step, now, worker_id)
                assert step.record is not None
                claims.append(Claim(record.id, record.message, step.record.attempts))
            if claims:
                return claims
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            run_at = state.next_run_at()
            if run_at is not None:
                remaining = min(remaining, (run_at - now + 1) / 1000)
            await state.wait(remaining)

    async def _finish(self, worker_id: str, outcomes: Sequence[Finish]) -> list[bool]:
        state, now = self._state()
        stored: list[bool] = []
        for outcome in outcomes:
            record = state.jobs.get(outcome.job_id)
            if record is None or not rules.owned(record, worker_id):
                stored.append(False)
                continue
            state.apply(outcome.job_id, rules.finish(record, outcome, now), now, worker_id)
            stored.append(True)
        return stored

    async def _heartbeat(
        self, worker_id: str, ttl_ms: int | None, job_ids: Sequence[str], lease_ms: int, info: bytes
    ) -> dict[str, Revoked]:
        state, now = self._state()
        if ttl_ms is not None:
            state.register(worker_id, now, ttl_ms, info)
        revoked: dict[str, Revoked] = {}
        for job_id in job_ids:
            step, reason = rules.renew(state.jobs.get(job_id), worker_id, now, lease_ms)
            if step is not None:
                state.apply(job_id, step, now)
            if reason is not None:
                revoked[job_id] = reason
        return revoked

    async def _unregister_worker(self, worker_id: str) -> None:
        state, now = self._state()
        state.unregister(worker_id, now)

    async def _set_progress(self, job_id: str, worker_id: str, data: bytes) -> bool:
        state, now = self._state()
        step = rules.set_progress(state.jobs.get(job_id), worker_id, data)
        if step is None:
            return False
        state.apply(job_id, step, now, worker_id)
        return True

    async def _cancel(self, job_id: str, *, abort: bool) -> JobState | None:
        state, now = self._state()
        record = state.jobs.get(job_id)
        if record is None:
            return None
        step = rules.cancel(record, abort=abort)
        if step is not None:
            state.apply(job_id, step, now, record.worker_id)
        return record.state

    async def _recover_stalled(self) -> Recovery:
        state, now = self._state()
        expired = sorted(
            (
                (record.lease_until or 0, record.id)
                for record in state.leases()
                if rules.is_stalled(record, now)
            ),
        )
        stalled: list[Stalled] = []
        # Requeued at the head in reverse, so the job that stalled first is claimed first.
        for _, job_id in reversed(expired):
            record = state.jobs.live(job_id)
            worker_id = record.worker_id or ""
            state.apply(job_id, rules.recover(record, now), now, worker_id)
            state.publish(EventKind.REQUEUED, job_id, now, worker_id)
            stalled.append(Stalled(job_id, worker_id))
        stalled.reverse()
        leases = [record.lease_until for record in state.leases() if record.lease_until is not None]
        return Recovery(stalled, min(leases) - now if leases else None)

    # ---------------------------------------------------------------- job state

    async def _get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        state, _ = self._state()
        return [state.jobs.get(job_id) for job_id in job_ids]

    async def _update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        state, now = self._state()
        step, outcome = rules.update_ttl(state.jobs.get(job_id), now, ttl_ms)
        if step is not None:
            state.apply(job_id, step, now)
        return outcome

    # ------------------------------------------------------------ notifications

    def _subscribe(
        self, channels: frozenset[Channel]
    ) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        return self._subscription(channels)

    @asynccontextmanager
    async def _subscription(self, channels: frozenset[Channel]) -> AsyncIterator[AsyncIterator[StorageEvent]]:
        state, _ = self._state()
        subscriber = Subscriber(channels)
        state.subscribe(subscriber)
        try:
            yield subscriber
        finally:
            subscriber.close()
            state.unsubscribe(subscriber)
