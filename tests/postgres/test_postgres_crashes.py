"""Real failures: a worker SIGKILLed mid-job, connections killed by pg_terminate_backend, a server crash."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg
import pytest
from jobqueue import Job, JobState, LeaderElection, Queue, Reaper
from jobqueue.storage import Channel, EventKind, StorageError, StorageEvent
from jobqueue_postgres import PostgresStorage

from tools.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres

T = TypeVar("T")

# A worker process: claims jobs with a short lease, prints their ids, then hangs until it is killed.
WORKER = """
import asyncio, sys
from jobqueue_postgres import PostgresStorage

async def main(url, schema):
    async with PostgresStorage(url, schema=schema) as storage:
        claims = await storage.dequeue("doomed", lease_ms=500, timeout_ms=30_000, limit=3)
        print(" ".join(claim.id for claim in claims), flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def _next(events: AsyncIterator[StorageEvent], timeout: float = 20) -> StorageEvent:
    return await asyncio.wait_for(anext(events), timeout)


async def _eventually(call: Callable[[], Awaitable[T]], tries: int = 200) -> tuple[T, int]:
    """Call until it stops raising ``StorageError`` (each failure is itself a round trip); return the value and the failures."""
    for failures in range(tries):
        try:
            return await call(), failures
        except StorageError:
            await asyncio.sleep(0.05)  # the server is restarting: a pause between attempts, not a condition
    raise AssertionError(f"still failing after {tries} tries")


@pytest.mark.slow
async def test_a_sigkilled_workers_jobs_are_recovered(postgres_url: str, storage: PostgresStorage) -> None:
    for i in range(3):
        await storage.enqueue(f"job-{i}", b"m")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, postgres_url, storage.schema, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert sorted(line.decode().split()) == ["job-0", "job-1", "job-2"]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    recovery = await storage.recover_stalled()
    if not recovery.stalled:
        assert recovery.next_expiry_ms is not None
        await asyncio.sleep(recovery.next_expiry_ms / 1000 + 0.05)  # until the dead worker's leases run out
        recovery = await storage.recover_stalled()
    assert sorted((s.id, s.worker_id) for s in recovery.stalled) == [(f"job-{i}", "doomed") for i in range(3)]
    claims = await storage.dequeue("survivor", lease_ms=10_000, timeout_ms=0, limit=3)
    assert sorted((c.id, c.attempt) for c in claims) == [(f"job-{i}", 2) for i in range(3)]


async def _terminate(admin: asyncpg.Connection, application: str) -> int:
    killed: int = await admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
        application,
    )
    return killed


async def test_terminated_connections_give_storage_errors_then_the_same_object_carries_on(
    postgres_url: str, schema: str, admin: asyncpg.Connection
) -> None:
    application = f"jq-{schema}"
    url = f"{postgres_url}?schema={schema}&pool_min=2&pool_max=2&application_name={application}"
    async with PostgresStorage.from_url(url) as storage:
        await storage.enqueue("before", b"m")
        async with storage.subscribe(Channel.EVENTS) as events:
            assert await _terminate(admin, application) == 3  # two pooled connections and the listener
            # A pooled connection the driver has not yet seen closed fails once; then the pool replaces it.
            _, failures = await _eventually(lambda: storage.enqueue("after", b"m"))
            assert failures <= 2
            claim = asyncio.create_task(storage.dequeue("w", lease_ms=10_000, timeout_ms=30_000, limit=5))
            claims = await asyncio.wait_for(claim, 20)
            assert [c.id for c in claims] == ["before", "after"]
            # The listener reconnected by itself: events and wake-ups flow again.
            blocked = asyncio.create_task(storage.dequeue("w", lease_ms=10_000, timeout_ms=30_000))
            await asyncio.sleep(0.2)  # let the claim block on the listener
            await storage.enqueue("woken", b"m")
            assert [c.id for c in await asyncio.wait_for(blocked, 20)] == ["woken"]
            # Events published while the listener was away are lost (best effort); later ones arrive.
            seen = [await _next(events)]
            while (seen[-1].kind, seen[-1].job_id) != (EventKind.PROCESSING, "woken"):
                seen.append(await _next(events))


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_server_crash_loses_nothing_committed_and_the_storage_carries_on(
    own_server: PostgresServer,
) -> None:
    async with PostgresStorage(own_server.url, schema="crash") as storage:
        for i in range(10):
            await storage.enqueue(f"job-{i}", b"m")
        claims = await storage.dequeue("w", lease_ms=600_000, timeout_ms=0, limit=4)
        for claim in claims:
            assert await storage.complete(claim.id, "w", b"result", 600_000)
        other = storage.namespace("other")
        async with other.subscribe(Channel.EVENTS) as events:
            blocked = asyncio.create_task(other.dequeue("w2", lease_ms=60_000, timeout_ms=120_000))
            await asyncio.to_thread(own_server.kill)  # pg_ctl stop -m immediate: no shutdown checkpoint
            with pytest.raises(StorageError):
                await storage.enqueue("while-down", b"m")
            with pytest.raises(StorageError):
                await storage.get("job-0")
            with pytest.raises(StorageError):
                await asyncio.wait_for(blocked, 60)  # its next look fails: the caller decides to retry
            await asyncio.to_thread(own_server.start)  # replays the WAL
            records, _ = await _eventually(lambda: storage.get_many([f"job-{i}" for i in range(10)]))
            states = [r.state if r else None for r in records]
            assert states == [JobState.COMPLETED] * 4 + [JobState.QUEUED] * 6
            assert all(r is not None and r.result == b"result" for r in records[:4])
            assert await storage.get("while-down") is None
            # The subscription outlives the crash: its listener reconnects by itself (events meanwhile are lost).
            for attempt in range(30):
                await other.enqueue(f"after-{attempt}", b"m")
                try:
                    event = await _next(events, timeout=1)
                except TimeoutError:
                    continue
                assert event.kind is EventKind.ENQUEUED
                break
            else:
                raise AssertionError("no event after the restart")
        rest = await storage.dequeue("w", lease_ms=60_000, timeout_ms=0, limit=10)
        assert sorted(c.id for c in rest) == [f"job-{i}" for i in range(4, 10)]


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_server_crash_under_load_loses_no_acknowledged_job(own_server: PostgresServer) -> None:
    storage = PostgresStorage(own_server.url, schema="load")
    queue: Queue[int, int] = Queue(storage, concurrency=4, block_timeout=1.0, visibility_timeout=3.0)
    handled: set[str] = set()

    @queue.execute
    async def handler(job: Job[int]) -> int:
        handled.add(job.id)
        return job.payload

    acknowledged: list[str] = []

    async def produce(count: int) -> None:
        for i in range(count):
            job_id = f"job-{len(acknowledged)}-{i}"
            try:
                await queue.enqueue(job_id, i)
            except StorageError:
                await asyncio.sleep(0.05)  # the server is away: pace the retries
                continue
            acknowledged.append(job_id)

    async with (
        storage,
        queue,
        Reaper(storage, leader_election=LeaderElection(lock_ttl=2, renew_interval=0.5)),
    ):
        await produce(60)
        await asyncio.to_thread(own_server.kill)
        await produce(20)  # refused while the server is down: not acknowledged, nothing promised
        await asyncio.to_thread(own_server.start)
        await produce(60)
        for _ in range(600):  # until every acknowledged job has completed, or 120 s
            records = await _eventually(lambda: storage.get_many(acknowledged))
            if all(r is not None and r.state is JobState.COMPLETED for r in records[0]):
                break
            await asyncio.sleep(0.2)
    missing = [job_id for job_id, r in zip(acknowledged, records[0], strict=True) if r is None]
    assert missing == [], "rule: an acknowledged enqueue survives a server crash"
    unfinished = [r.id for r in records[0] if r is not None and r.state is not JobState.COMPLETED]
    assert unfinished == [], "rule: workers carry on after the restart"
    assert len(acknowledged) >= 120
