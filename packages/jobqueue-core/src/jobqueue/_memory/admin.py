"""Monitoring and leader-lock operations of ``MemoryStorage``, as a mixin over its shared state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .._durations import now_ms
from .state import MemoryStore, NamespaceState
from .._contract.paging import page_jobs
from .._contract.storage import EventKind, JobPage
from .._types import JobState

__all__ = ["MemoryAdminMixin"]


class MemoryAdminMixin:
    """Dashboard calls (counts, listing, purge, retry) and the ``LeaderLock`` capability."""

    _store: MemoryStore

    def _state(self) -> NamespaceState:
        raise NotImplementedError

    # --------------------------------------------------------------- monitoring

    async def counts(self) -> dict[JobState, int]:
        """Number of live jobs per state, every state present."""
        counts = dict.fromkeys(JobState, 0)
        for record in self._state().jobs.values():
            counts[record.state] += 1
        return counts

    async def list_jobs(
        self,
        *,
        state: JobState | None = None,
        prefix: str = "",
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        """Page through live jobs, newest first (ties by id, descending), by state and id prefix.

        The cursor is the position of the last record returned, so records
        added or removed between pages never shift the next page.
        """
        return page_jobs(self._state().jobs.values(), state=state, prefix=prefix, cursor=cursor, limit=limit)

    async def list_namespaces(self) -> list[str]:
        """Namespaces of this store that hold jobs or workers."""
        self._state()
        now = now_ms()
        return sorted(name for name, state in self._store.namespaces.items() if not state.is_empty(now))

    async def retry_failed(self, job_id: str) -> bool:
        """Queue a failed job again with its attempts reset."""
        state = self._state()
        record = state.jobs.get(job_id)
        if record is None or record.state is not JobState.FAILED:
            return False
        now = now_ms()
        state.jobs[job_id] = replace(
            record,
            state=JobState.QUEUED,
            attempts=0,
            worker_id=None,
            error=None,
            expires_at=None,
            updated_at=now,
        )
        state.ready.append(job_id)
        state.wake()
        state.publish(EventKind.ENQUEUED, job_id, now)
        return True

    async def purge(self, states: Sequence[JobState]) -> int:
        """Delete every job in the given terminal states; return how many."""
        wanted = {JobState(value) for value in states}
        if not_terminal := sorted(value for value in wanted if not value.is_terminal):
            raise ValueError(f"purge only deletes terminal states (completed, failed), got {not_terminal}")
        state = self._state()
        doomed = [record.id for record in state.jobs.values() if record.state in wanted]
        for job_id in doomed:
            state.drop(job_id)
        return len(doomed)

    # -------------------------------------------------------------- leader lock

    async def acquire_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take or renew ``key`` for ``owner``; False when another owner holds it."""
        state = self._state()
        now = now_ms()
        held = state.locks.get(key)
        if held is not None and held[0] != owner and held[1] > now:
            return False
        state.locks[key] = (owner, now + ttl_ms)
        return True

    async def release_lock(self, key: str, owner: str) -> bool:
        """Release ``key`` if ``owner`` holds it."""
        state = self._state()
        held = state.locks.get(key)
        if held is None or held[0] != owner:
            return False
        del state.locks[key]
        return held[1] > now_ms()
