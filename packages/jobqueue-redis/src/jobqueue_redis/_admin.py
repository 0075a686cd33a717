"""Monitoring and the leader lock of ``RedisStorage``, as a mixin.

Listing and purging find their ids in an index first (a plain command) and
then run a script on those ids, declared as keys: a script never touches a
key it was not given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

from jobqueue import JobState
from jobqueue.storage import JobPage, JobRecord, WorkerRecord, check_ms, cursor_of, parse_cursor

from ._keys import Keys
from ._records import text, workers_from_reply

__all__ = ["RedisAdminMixin"]

_PAGE = 200  # index entries read per step of list_jobs
_PURGE_CHUNK = 500  # ids per purge script call
_COUNT_ORDER = (JobState.QUEUED, JobState.PROCESSING, JobState.FAILING, JobState.COMPLETED, JobState.FAILED)


class RedisAdminMixin:
    """Monitoring and the leader lock; ``RedisStorage`` provides ``_run``, ``_command`` and the rest."""

    _keys: Keys

    async def _run(self, script: str, args: Sequence[Any] = (), keys: Sequence[str] = ()) -> Any:
        raise NotImplementedError

    async def _command(self, *args: Any) -> Any:
        raise NotImplementedError

    async def _scan(self, pattern: str) -> list[bytes]:
        raise NotImplementedError

    async def _get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        raise NotImplementedError

    def _view(self, name: str) -> Self:
        raise NotImplementedError

    # --------------------------------------------------------------- monitoring

    async def _counts(self) -> Mapping[JobState, int]:
        reply = await self._run("counts")
        return {state: int(count) for state, count in zip(_COUNT_ORDER, reply, strict=True)}

    async def _list_jobs(
        self, state: JobState | None, prefix: str, cursor: str | None, limit: int
    ) -> JobPage:
        # Newest first, ties by id descending: the order of ZREVRANGEBYSCORE on the job index.
        top, after = "+inf", b""
        position = parse_cursor(cursor)
        if position is not None:
            top, after = str(position[0]), position[1].encode()
        index = self._keys.fixed("jobs")
        records: list[JobRecord] = []
        offset = 0
        while len(records) <= limit:
            page = await self._command(
                "ZREVRANGEBYSCORE", index, top, "-inf", "WITHSCORES", "LIMIT", offset, _PAGE
            )
            offset += len(page) // 2
            ids = []
            for i in range(0, len(page), 2):
                member, score = page[i], int(float(page[i + 1]))
                if after and str(score) == top and member >= after:
                    continue  # at or before the cursor
                job_id = text(member)
                if job_id.startswith(prefix):
                    ids.append(job_id)
            if ids:
                for record in await self._get_many(ids):
                    if record is not None and (state is None or record.state is state):
                        records.append(record)
            if len(page) < 2 * _PAGE:
                break
        page_records = records[:limit]
        more = len(records) > limit
        last = page_records[-1] if page_records else None
        return JobPage(page_records, cursor_of(last) if more and last else None)

    async def _list_namespaces(self) -> Iterable[str]:
        candidates = await self._namespace_candidates()
        names = []
        for name in sorted(candidates):
            view = self._view(name)
            if any((await view._counts()).values()) or list(await view._list_workers()):
                names.append(name)
        return names

    async def _namespace_candidates(self) -> set[str]:
        """Names of the namespaces that have a job index, live hash or worker registry (on every master)."""
        candidates: set[str] = set()
        for key in await self._scan(Keys.scan_pattern(self._keys.prefix)):
            name = Keys.namespace_of(text(key), self._keys.prefix)
            if name is not None:
                candidates.add(name)
        return candidates

    async def _list_workers(self) -> Iterable[WorkerRecord]:
        return workers_from_reply(await self._run("list_workers"))

    async def _purge(self, states: frozenset[JobState]) -> int:
        total = 0
        for state in sorted(states):
            index = self._keys.fixed(state.value)
            while True:
                members = await self._command("ZRANGE", index, 0, _PURGE_CHUNK - 1)
                if not members:
                    break
                ids = [text(member) for member in members]
                keys = self._keys.jobs(ids)
                total += int(await self._run("purge", [state.value, *ids], keys))
        return total

    async def _retry_failed(self, job_id: str) -> bool:
        return bool(await self._run("retry_failed", [job_id], [self._keys.job(job_id)]))

    # -------------------------------------------------------------- leader lock

    async def acquire_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take ``key`` for ``owner`` (SET NX PX), or renew it when ``owner`` holds it."""
        check_ms(ttl_ms, "ttl_ms", 1)
        return bool(await self._run("acquire_lock", [owner, ttl_ms], [self._keys.lock(key)]))

    async def release_lock(self, key: str, owner: str) -> bool:
        """Release ``key`` if ``owner`` holds it."""
        return bool(await self._run("release_lock", [owner], [self._keys.lock(key)]))
