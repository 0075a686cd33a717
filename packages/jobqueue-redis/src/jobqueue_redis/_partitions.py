"""``RedisStorage(..., partitions=N)``: one hot queue spread over N hash slots.

Partition 0 of namespace ``orders`` is the namespace itself (``jq:{orders}:``),
so a queue that grows from one partition to several keeps reading its old
jobs there; partition ``i`` lives under ``jq:{orders#i}:``. A job goes to the
partition of a CRC-32 of its id, so dedup, cancel, status and results stay
per id. Each partition is an unpartitioned ``RedisStorage`` on the same
connections; the primitives here send each id to its partition, ask every
partition where the contract asks about the whole queue (claims, heartbeats,
recovery, counts, listings) and merge the answers.

A worker claims from the partitions in turn, starting one further each call.
When all are empty it does not poll: it waits for the ``enqueued``,
``requeued`` and ``stalled`` events of every partition (sharded pub/sub on a
cluster) and for the earliest scheduled job, then claims from the partition
that spoke first. FIFO and priorities hold within a partition only.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Self, TypeVar

from jobqueue import JobState
from jobqueue.storage import (
    Channel,
    Claim,
    EnqueueOutcome,
    Finish,
    JobPage,
    JobRecord,
    NewJob,
    Recovery,
    Revoked,
    StorageEvent,
    TtlOutcome,
    WorkerRecord,
)

from ._keys import Keys, validate_name
from ._storage import RedisStorage
from ._wakes import stop_all, wakes_of

__all__ = ["PartitionedRedisStorage", "partition_name", "partition_of"]

_SEPARATOR = "#"
T = TypeVar("T")


def partition_of(job_id: str, partitions: int) -> int:
    """The partition of a job id: a hash every process computes alike (not Python's ``hash``)."""
    return zlib.crc32(job_id.encode("utf-8")) % partitions


def partition_name(namespace: str, index: int) -> str:
    """The namespace name (hash tag) of partition ``index``: ``orders``, ``orders#1``, ..."""
    return namespace if index == 0 else f"{namespace}{_SEPARATOR}{index}"


class PartitionedRedisStorage(RedisStorage):
    """A ``RedisStorage`` whose namespaces each span ``partitions`` hash slots (see the module)."""

    _parts: list[RedisStorage]

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", **options: Any) -> None:
        super().__init__(url, **options)
        self._next = 0
        self._parts = self._make_parts()

    def __repr__(self) -> str:
        return (
            f"RedisStorage(prefix={self._keys.prefix!r}, namespace={self._keys.namespace!r}, "
            f"partitions={self._partitions})"
        )

    def _make_parts(self) -> list[RedisStorage]:
        parts = []
        for index in range(self._partitions):
            part = object.__new__(RedisStorage)
            part.__dict__.update(self.__dict__)  # the same connections and options
            part.__dict__.pop("_parts", None)
            part._keys = Keys(self._keys.prefix, partition_name(self._keys.namespace, index))
            parts.append(part)
        return parts

    def _view(self, name: str) -> Self:
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._keys = Keys(self._keys.prefix, validate_name(name, "namespace name"))
        view._next = 0
        view._parts = view._make_parts()
        return view

    @property
    def partitions(self) -> list[RedisStorage]:
        """The partitions of this namespace, as unpartitioned storages (for tools and tests)."""
        return list(self._parts)

    def _part(self, job_id: str) -> RedisStorage:
        return self._parts[partition_of(job_id, self._partitions)]

    def _by_part(self, items: Sequence[T], job_id: Any) -> dict[int, list[tuple[int, T]]]:
        groups: dict[int, list[tuple[int, T]]] = defaultdict(list)
        for position, item in enumerate(items):
            groups[partition_of(job_id(item), self._partitions)].append((position, item))
        return groups

    # -------------------------------------------------------------------- queue

    async def _enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        groups = self._by_part(jobs, lambda job: job.id)
        replies = await _all(
            self._parts[p]._enqueue([job for _, job in group]) for p, group in groups.items()
        )
        out: list[EnqueueOutcome | None] = [None] * len(jobs)
        for group, reply in zip(groups.values(), replies, strict=True):
            for (position, _), outcome in zip(group, reply, strict=True):
                out[position] = outcome
        return [outcome for outcome in out if outcome is not None]

    async def _claim_round(
        self, worker_id: str, lease_ms: int, limit: int, first: int | None = None
    ) -> tuple[list[Claim], int | None]:
        """Claim from the partitions in turn until ``limit``; also the ms until the next due job."""
        if first is None:
            first, self._next = self._next, (self._next + 1) % self._partitions
        claims: list[Claim] = []
        next_due: int | None = None
        for step in range(self._partitions):
            part = self._parts[(first + step) % self._partitions]
            got, due = await part._claim_once(worker_id, lease_ms, limit - len(claims))
            claims += got
            if len(claims) >= limit:
                break
            if due is not None:
                next_due = due if next_due is None else min(next_due, due)
        return claims, (None if claims else next_due)

    async def _claim(self, worker_id: str, lease_ms: int, limit: int, timeout_ms: int) -> list[Claim]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        wakes = wakes_of(self._shared, self._keys.namespace, self._partition_index)
        if timeout_ms and not wakes.listening:
            # Listen before looking: a job enqueued after a partition was looked at is heard.
            await wakes.start(self.subscribe)
        first: int | None = None
        while True:
            signal = wakes.signal  # the wake-ups from now on
            claims, next_due = await self._claim_round(worker_id, lease_ms, limit, first)
            wait = deadline - loop.time()
            if claims or wait <= 0:
                return claims
            if next_due is not None:
                wait = min(wait, (next_due + 1) / 1000)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await signal.wait()
            first = wakes.last
            if not wakes.listening:
                await wakes.start(self.subscribe)  # the listener ended (connections lost): again

    def _partition_index(self, job_id: str) -> int:
        return partition_of(job_id, self._partitions)

    async def disconnect(self) -> None:
        """Release one ``connect``; the last release also stops the wake-up listeners."""
        await super().disconnect()
        if self._shared.refs == 0:
            await stop_all(self._shared)

    async def _finish(self, worker_id: str, outcomes: Sequence[Finish]) -> list[bool]:
        groups = self._by_part(outcomes, lambda outcome: outcome.job_id)
        replies = await _all(
            self._parts[p]._finish(worker_id, [o for _, o in group]) for p, group in groups.items()
        )
        out = [False] * len(outcomes)
        for group, reply in zip(groups.values(), replies, strict=True):
            for (position, _), stored in zip(group, reply, strict=True):
                out[position] = stored
        return out

    async def _heartbeat(
        self,
        worker_id: str,
        ttl_ms: int | None,
        job_ids: Sequence[str],
        lease_ms: int,
        info: bytes,
        *,
        announce: bool = True,
    ) -> dict[str, Revoked]:
        # The worker registers in every partition, so each one's registry and reaper see it.
        groups = self._by_part(job_ids, lambda job_id: job_id)
        # Only the first partition publishes the worker events, so a worker joins and leaves once.
        calls = [
            part._heartbeat(
                worker_id,
                ttl_ms,
                [job_id for _, job_id in groups.get(p, [])],
                lease_ms,
                info,
                announce=announce and p == 0,
            )
            for p, part in enumerate(self._parts)
            if ttl_ms is not None or p in groups
        ]
        revoked: dict[str, Revoked] = {}
        for reply in await _all(calls):
            revoked.update(reply)
        return revoked

    async def _unregister_worker(self, worker_id: str, *, announce: bool = True) -> None:
        await asyncio.gather(
            *(
                part._unregister_worker(worker_id, announce=announce and p == 0)
                for p, part in enumerate(self._parts)
            )
        )

    async def _set_progress(self, job_id: str, worker_id: str, data: bytes) -> bool:
        return await self._part(job_id)._set_progress(job_id, worker_id, data)

    async def _cancel(self, job_id: str, *, abort: bool) -> JobState | None:
        return await self._part(job_id)._cancel(job_id, abort=abort)

    async def _recover_stalled(self) -> Recovery:
        recoveries = await asyncio.gather(*(part._recover_stalled() for part in self._parts))
        expiries = [r.next_expiry_ms for r in recoveries if r.next_expiry_ms is not None]
        return Recovery([s for r in recoveries for s in r.stalled], min(expiries) if expiries else None)

    async def _get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        groups = self._by_part(job_ids, lambda job_id: job_id)
        replies = await _all(
            self._parts[p]._get_many([job_id for _, job_id in group]) for p, group in groups.items()
        )
        out: list[JobRecord | None] = [None] * len(job_ids)
        for group, reply in zip(groups.values(), replies, strict=True):
            for (position, _), record in zip(group, reply, strict=True):
                out[position] = record
        return out

    async def _update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        return await self._part(job_id)._update_ttl(job_id, ttl_ms)

    def _subscribe(
        self, channels: frozenset[Channel]
    ) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        return self._subscription([part.keys for part in self._parts], channels)

    # --------------------------------------------------------------- monitoring

    async def _counts(self) -> Mapping[JobState, int]:
        totals: dict[JobState, int] = defaultdict(int)
        for counts in await asyncio.gather(*(part._counts() for part in self._parts)):
            for state, count in counts.items():
                totals[state] += count
        return {state: totals[state] for state in JobState}

    async def _list_jobs(
        self, state: JobState | None, prefix: str, cursor: str | None, limit: int
    ) -> JobPage:
        # Each partition lists in the same order (newest first, ties by id descending) from
        # the same cursor; the first `limit` of the merge are the page.
        pages = await asyncio.gather(*(p._list_jobs(state, prefix, cursor, limit) for p in self._parts))
        merged = sorted(
            (record for page in pages for record in page.records),
            key=lambda record: (record.created_at, record.id),
            reverse=True,
        )
        records = merged[:limit]
        more = len(merged) > limit or any(page.next_cursor is not None for page in pages)
        last = records[-1] if records else None
        return JobPage(records, f"{last.created_at}:{last.id}" if more and last else None)

    async def _namespace_candidates(self) -> set[str]:
        names = set()
        for name in await super()._namespace_candidates():
            base, sep, index = name.rpartition(_SEPARATOR)
            if sep and index.isdigit() and 0 < int(index) < self._partitions:
                name = base
            names.add(name)
        return names

    async def _list_workers(self) -> Iterable[WorkerRecord]:
        merged: dict[str, WorkerRecord] = {}
        for workers in await asyncio.gather(*(part._list_workers() for part in self._parts)):
            for worker in workers:
                seen = merged.get(worker.id)
                if seen is not None:
                    worker = WorkerRecord(
                        worker.id,
                        max(seen.last_seen, worker.last_seen),
                        max(seen.expires_at, worker.expires_at),
                        tuple(sorted({*seen.jobs, *worker.jobs})),
                        worker.info if worker.last_seen >= seen.last_seen else seen.info,
                    )
                merged[worker.id] = worker
        return [merged[worker_id] for worker_id in sorted(merged)]

    async def _purge(self, states: frozenset[JobState]) -> int:
        return sum(await asyncio.gather(*(part._purge(states) for part in self._parts)))

    async def _retry_failed(self, job_id: str) -> bool:
        return await self._part(job_id)._retry_failed(job_id)


async def _all(calls: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Await the calls together; a single one directly.

    No task and no extra loop turn for one call: the consumer path stays as quick as an
    unpartitioned storage's.
    """
    pending = list(calls)
    if len(pending) == 1:
        return [await pending[0]]
    return list(await asyncio.gather(*pending))
