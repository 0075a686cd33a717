"""Monitoring and leader-lock operations of ``MemoryStorage``, over its shared state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .._contract import rules
from .._contract.paging import page_jobs
from .._contract.records import JobPage, WorkerRecord
from .._types import JobState
from .state import MemoryStore, NamespaceState

__all__ = ["MemoryMonitoring"]


class MemoryMonitoring:
    """The ``Monitoring`` primitives and the ``LeaderLock`` capability of ``MemoryStorage``."""

    _store: MemoryStore

    def _state(self) -> tuple[NamespaceState, int]:
        raise NotImplementedError

    async def _counts(self) -> Mapping[JobState, int]:
        return self._state()[0].jobs.counts()

    async def _list_jobs(
        self, state: JobState | None, prefix: str, cursor: str | None, limit: int
    ) -> JobPage:
        records = self._state()[0].jobs.records(state)
        return page_jobs(records, state=state, prefix=prefix, cursor=cursor, limit=limit)

    async def _list_namespaces(self) -> Iterable[str]:
        _, now = self._state()
        return [name for name, space in self._store.namespaces.items() if not space.is_empty(now)]

    async def _list_workers(self) -> Iterable[WorkerRecord]:
        return self._state()[0].worker_records()

    async def _purge(self, states: frozenset[JobState]) -> int:
        space, now = self._state()
        doomed = space.jobs.ids(states)
        for job_id in doomed:
            space.apply(job_id, rules.Step(None), now)
        return len(doomed)

    async def _retry_failed(self, job_id: str) -> bool:
        space, now = self._state()
        step = rules.reset_failed(space.jobs.get(job_id), now)
        if step is None:
            return False
        space.apply(job_id, step, now)
        return True

    # -------------------------------------------------------------- leader lock

    async def acquire_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take or renew ``key`` for ``owner``; False when another owner holds it."""
        space, now = self._state()
        held = space.locks.get(key)
        if held is not None and held[0] != owner and held[1] > now:
            return False
        space.locks[key] = (owner, rules.later(now, ttl_ms))
        return True

    async def release_lock(self, key: str, owner: str) -> bool:
        """Release ``key`` if ``owner`` holds it."""
        space, now = self._state()
        held = space.locks.get(key)
        if held is None or held[0] != owner:
            return False
        del space.locks[key]
        return held[1] > now
