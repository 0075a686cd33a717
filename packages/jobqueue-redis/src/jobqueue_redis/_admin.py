"""Job state, workers, monitoring and the leader lock of ``RedisStorage``, as a mixin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Self, cast

from jobqueue import JobPage, JobRecord, JobState, WorkerRecord

from ._errors import redis_errors
from ._keys import Keys
from ._records import record_from_fields, text, workers_from_reply

__all__ = ["RedisAdminMixin"]

_TtlOutcome = Literal["updated", "not_found", "not_terminal"]

_LIST_BUDGET = 1000  # index entries one list_jobs script call looks at, to keep each call short


class RedisAdminMixin:
    """Everything besides the queue path; ``RedisStorage`` provides ``_run``, ``_keys`` and the rest."""

    _keys: Keys

    async def _run(self, script: str, *args: Any) -> Any:
        raise NotImplementedError

    def namespace(self, name: str) -> Self:
        raise NotImplementedError

    # ---------------------------------------------------------------- job state

    async def get(self, job_id: str) -> JobRecord | None:
        """The live record of a job, or None (never stored, cancelled or expired)."""
        return (await self.get_many([job_id]))[0]

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """``get`` for many ids in one round trip, in the order given."""
        if isinstance(job_ids, str):
            raise TypeError("job_ids must be a sequence of ids, not a str")
        if not job_ids:
            return []
        reply = await self._run("get_many", *job_ids)
        return [record_from_fields(job_id, fields) for job_id, fields in zip(job_ids, reply, strict=True)]

    async def delete(self, job_id: str) -> bool:
        """Remove every trace of a job that is not processing."""
        return bool(await self._run("delete", job_id))

    async def update_ttl(self, job_id: str, ttl_ms: int) -> _TtlOutcome:
        """Make a terminal record expire ``ttl_ms`` from now."""
        if not isinstance(ttl_ms, int) or isinstance(ttl_ms, bool) or ttl_ms < 0:
            raise ValueError(f"ttl_ms must be an int >= 0, got {ttl_ms!r}")
        return cast(_TtlOutcome, text(await self._run("update_ttl", job_id, ttl_ms)))

    # ------------------------------------------------------------------ workers

    async def register_worker(self, worker_id: str, ttl_ms: int) -> None:
        """Register a worker or refresh its heartbeat; it lapses after ``ttl_ms``."""
        if not isinstance(ttl_ms, int) or isinstance(ttl_ms, bool) or ttl_ms < 1:
            raise ValueError(f"ttl_ms must be an int >= 1, got {ttl_ms!r}")
        await self._run("register_worker", worker_id, ttl_ms)

    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker's registration; its processing set stays while it holds jobs."""
        await self._run("unregister_worker", worker_id)

    async def list_workers(self) -> list[WorkerRecord]:
        """Registered workers, and lapsed ones that still hold jobs, by id."""
        return workers_from_reply(await self._run("list_workers"))

    # --------------------------------------------------------------- monitoring

    async def counts(self) -> dict[JobState, int]:
        """Number of live jobs per state (expired records are pruned first)."""
        reply = await self._run("counts")
        order = (JobState.QUEUED, JobState.PROCESSING, JobState.FAILING, JobState.COMPLETED, JobState.FAILED)
        return {state: int(count) for state, count in zip(order, reply, strict=True)}

    async def list_jobs(
        self,
        *,
        state: JobState | None = None,
        prefix: str = "",
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        """Page through live jobs, newest first (ties by id, descending), by state and id prefix."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        wanted_state = "" if state is None else JobState(state).value
        max_score, after = "+inf", ""
        if cursor is not None:
            created_at, sep, after = cursor.partition(":")
            if not sep or not created_at.isdigit():
                raise ValueError(f"cursor {cursor!r} was not returned by list_jobs")
            max_score = created_at
        records: list[JobRecord] = []
        while True:
            reply = await self._run(
                "list_jobs", wanted_state, prefix, max_score, after, limit + 1 - len(records), _LIST_BUDGET
            )
            for i in range(3, len(reply), 2):
                record = record_from_fields(text(reply[i]), reply[i + 1])
                if record is not None:
                    records.append(record)
            if reply[2]:
                max_score, after = text(reply[1]), text(reply[2])
            if len(records) > limit or int(reply[0]):
                break
        page = records[:limit]
        more = len(records) > limit
        return JobPage(page, f"{page[-1].created_at}:{page[-1].id}" if more else None)

    async def list_namespaces(self) -> list[str]:
        """Namespaces under this prefix that hold jobs or workers."""
        candidates: set[str] = set()
        pattern = Keys.scan_pattern(self._keys.prefix)
        cursor = 0
        while True:
            with redis_errors("list_namespaces (SCAN)"):
                cursor, keys = await self._scan(cursor, pattern)
            for key in keys:
                name = Keys.namespace_of(text(key), self._keys.prefix)
                if name is not None:
                    candidates.add(name)
            if cursor == 0:
                break
        names = []
        for name in sorted(candidates):
            view = self.namespace(name)
            if any((await view.counts()).values()) or await view.list_workers():
                names.append(name)
        return names

    async def _scan(self, cursor: int, pattern: str) -> tuple[int, list[bytes]]:
        raise NotImplementedError

    async def retry_failed(self, job_id: str) -> bool:
        """Queue a ``failed`` job again with its attempts reset."""
        return bool(await self._run("retry_failed", job_id))

    async def purge(self, states: Sequence[JobState]) -> int:
        """Delete every job in the given terminal states; return how many."""
        wanted = sorted({JobState(value) for value in states})
        if not_terminal := [value.value for value in wanted if not value.is_terminal]:
            raise ValueError(f"purge only deletes terminal states (completed, failed), got {not_terminal}")
        if not wanted:
            return 0
        return int(await self._run("purge", *(value.value for value in wanted)))

    # -------------------------------------------------------------- leader lock

    async def acquire_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take ``key`` for ``owner`` (SET NX PX), or renew it when ``owner`` holds it."""
        if not isinstance(ttl_ms, int) or isinstance(ttl_ms, bool) or ttl_ms < 1:
            raise ValueError(f"ttl_ms must be an int >= 1, got {ttl_ms!r}")
        return bool(await self._run("acquire_lock", key, owner, ttl_ms))

    async def release_lock(self, key: str, owner: str) -> bool:
        """Release ``key`` if ``owner`` holds it."""
        return bool(await self._run("release_lock", key, owner))
