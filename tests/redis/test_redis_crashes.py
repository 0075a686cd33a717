"""Real failures: a server killed and restarted (AOF on), SCRIPT FLUSH, workers killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from jobqueue import JobState, Queue, Reaper, StorageError
from jobqueue.storage import Channel, StorageEvent
from jobqueue_conformance import wait_until
from jobqueue_redis import RedisStorage
from redis.asyncio import Redis

from tests.server_support import server_or_skip
from tools.servers import ServerKind, ServerProcess

SERVERS = [pytest.param("redis", marks=pytest.mark.redis), pytest.param("valkey", marks=pytest.mark.valkey)]

# A worker process: claims jobs, prints their ids, then hangs until it is killed.
WORKER = """
import asyncio, sys
from jobqueue_redis import RedisStorage

async def main(url, prefix, limit, lease_ms, timeout_ms):
    async with RedisStorage(url, prefix=prefix) as storage:
        print("ready", flush=True)
        claims = await storage.dequeue("doomed", lease_ms=lease_ms, timeout_ms=timeout_ms, limit=limit)
        print(" ".join(claim.id for claim in claims), flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])))
"""


@pytest.fixture(params=SERVERS)
def aof_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    kind: ServerKind = request.param
    server_or_skip(kind)
    with ServerProcess(kind, aof=True) as server:
        server.start()
        yield server


@pytest.fixture
async def aof_raw(aof_server: ServerProcess) -> AsyncIterator[Redis]:
    client = Redis.from_url(aof_server.url, protocol=2)
    try:
        yield client
    finally:
        await client.aclose()


async def _next(events: AsyncIterator[StorageEvent], timeout: float) -> StorageEvent | None:
    try:
        return await asyncio.wait_for(anext(events), timeout)
    except TimeoutError:
        return None


@pytest.mark.slow
async def test_a_server_restart_loses_nothing_acknowledged_and_the_storage_recovers(
    aof_server: ServerProcess,
) -> None:
    async with RedisStorage(aof_server.url, prefix="r") as storage:
        for i in range(10):
            await storage.enqueue(f"job-{i}", b"m")
        claims = await storage.dequeue("w", lease_ms=60_000, timeout_ms=0, limit=4)
        for claim in claims:
            assert await storage.complete(claim.id, "w", b"result", 600_000)
        async with storage.subscribe(Channel.EVENTS) as events:
            await asyncio.to_thread(aof_server.kill)
            with pytest.raises(StorageError):
                await storage.enqueue("while-down", b"m")
            with pytest.raises(StorageError):
                await storage.dequeue("w", lease_ms=60_000, timeout_ms=100)
            await asyncio.to_thread(aof_server.start)

            # the same storage works again: reconnects, reloads its scripts (NOSCRIPT)
            counts = await storage.counts()
            assert counts[JobState.COMPLETED] == 4 and counts[JobState.QUEUED] == 6, counts
            record = await storage.get("job-0")
            assert record is not None and record.result == b"result"

            # and the shared pub/sub connection subscribed again by itself
            async def heard_a_probe() -> bool:
                probe = f"probe-{uuid.uuid4().hex[:6]}"
                await storage.enqueue(probe, b"m")
                while (event := await _next(events, 0.2)) is not None:
                    if event.job_id == probe:
                        return True
                return False

            await wait_until(heard_a_probe, message="pub/sub resubscribes after the restart", timeout=10)
            claims = await storage.dequeue("w", lease_ms=60_000, timeout_ms=1000, limit=100)
            assert {claim.id for claim in claims} >= {f"job-{i}" for i in range(4, 10)}


async def test_scripts_are_loaded_again_after_script_flush(storage: RedisStorage, raw: Redis) -> None:
    await storage.enqueue("before", b"m")
    await raw.script_flush()
    assert (await storage.enqueue("after", b"m")).accepted
    assert [c.id for c in await storage.dequeue("w", lease_ms=5000, timeout_ms=0, limit=5)] == [
        "before",
        "after",
    ]


def _spawn_worker(
    url: str, prefix: str, *, limit: int, lease_ms: int, timeout_ms: int
) -> subprocess.Popen[str]:
    args = [sys.executable, "-c", WORKER, url, prefix, str(limit), str(lease_ms), str(timeout_ms)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.mark.slow
async def test_jobs_of_a_killed_worker_are_recovered_and_completed(aof_server: ServerProcess) -> None:
    prefix = f"k{uuid.uuid4().hex[:6]}"
    async with RedisStorage(aof_server.url, prefix=prefix) as storage:
        for i in range(10):
            await storage.enqueue(f"job:{i}", b"m")
        proc = _spawn_worker(aof_server.url, prefix, limit=6, lease_ms=500, timeout_ms=0)
        try:
            assert proc.stdout is not None
            held = (await asyncio.to_thread(proc.stdout.readline)).split()
            assert len(held) == 6
        finally:
            _kill(proc)
        assert (await storage.counts())[JobState.PROCESSING] == 6

        async def all_recovered() -> bool:
            await storage.recover_stalled()
            return (await storage.counts())[JobState.PROCESSING] == 0

        await wait_until(all_recovered, message="the dead worker's jobs are requeued", timeout=10)
        done: set[str] = set()
        while claims := await storage.dequeue("survivor", lease_ms=5000, timeout_ms=200, limit=10):
            for claim in claims:
                assert await storage.complete(claim.id, "survivor", b"ok", 60_000)
                done.add(claim.id)
        assert done == {f"job:{i}" for i in range(10)}, "every job completed, none lost"
        assert (await storage.counts())[JobState.COMPLETED] == 10


@pytest.mark.slow
async def test_a_worker_killed_while_blocked_claims_nothing(
    aof_server: ServerProcess, aof_raw: Redis
) -> None:
    # Its claim script waits behind BZPOPMIN on the same connection; the server drops both with it.
    prefix = f"l{uuid.uuid4().hex[:6]}"
    async with RedisStorage(aof_server.url, prefix=prefix) as storage:
        proc = _spawn_worker(aof_server.url, prefix, limit=1, lease_ms=60_000, timeout_ms=20_000)
        try:
            await wait_until(
                lambda: _blocked(aof_raw, 1), message="the worker blocks in BZPOPMIN", timeout=10
            )
        finally:
            _kill(proc)
        await wait_until(
            lambda: _blocked(aof_raw, 0), message="the server drops the killed worker", timeout=10
        )
        await storage.enqueue("orphan", b"m")
        record = await storage.get("orphan")
        assert record is not None and record.state is JobState.QUEUED and record.attempts == 0
        claims = await storage.dequeue("survivor", lease_ms=5000, timeout_ms=0)
        assert [(c.id, c.attempt) for c in claims] == [("orphan", 1)], "the job never left the ready set"


@pytest.mark.slow
async def test_a_worker_frozen_at_its_wake_up_holds_the_job_only_for_its_lease(
    aof_server: ServerProcess, aof_raw: Redis
) -> None:
    prefix = f"l{uuid.uuid4().hex[:6]}"
    async with RedisStorage(aof_server.url, prefix=prefix) as storage:
        proc = _spawn_worker(aof_server.url, prefix, limit=1, lease_ms=300, timeout_ms=20_000)
        try:
            await wait_until(
                lambda: _blocked(aof_raw, 1), message="the worker blocks in BZPOPMIN", timeout=10
            )
            os.kill(proc.pid, signal.SIGSTOP)  # frozen: the server wakes it and runs its claim
            await storage.enqueue("orphan", b"m")

            async def recovered() -> bool:
                return bool((await storage.recover_stalled()).stalled)

            await wait_until(recovered, message="the frozen worker's job is recovered after its lease")
        finally:
            _kill(proc)
        claims = await storage.dequeue("survivor", lease_ms=5000, timeout_ms=0)
        assert [(c.id, c.attempt) for c in claims] == [("orphan", 2)]


async def _blocked(raw: Redis, count: int) -> bool:
    """Whether ``count`` clients wait in BZPOPMIN."""
    return sum(client.get("cmd") == "bzpopmin" for client in await raw.client_list()) == count


@pytest.mark.slow
async def test_a_running_queue_carries_on_across_a_server_restart(aof_server: ServerProcess) -> None:
    async with RedisStorage(aof_server.url, prefix=f"q{uuid.uuid4().hex[:6]}") as storage:
        worker: Queue[int, int] = Queue(storage, concurrency=10, block_timeout=0.3, visibility_timeout=2)
        worker.execute(lambda job: job.payload * 2)
        reaper = Reaper(storage, visibility_timeout=2, leader_election=None)  # for a finish lost in the crash
        accepted: list[str] = []

        async def produce(start: int, count: int) -> None:
            for i in range(start, start + count):
                try:
                    await worker.enqueue(f"job-{i}", i)
                    accepted.append(f"job-{i}")
                except StorageError:
                    pass  # the server is down: not acknowledged, so not expected to run

        async with worker, reaper:
            await produce(0, 50)
            await asyncio.to_thread(aof_server.kill)
            with pytest.raises(StorageError):
                await worker.enqueue("while-down", 0)
            await asyncio.to_thread(aof_server.start)
            await produce(50, 50)
            assert await worker.enqueue_and_wait("after", 21, timeout=10) == 42

            async def all_done() -> bool:
                statuses = [await worker.get_status(job_id) for job_id in accepted]
                return all(s is not None and s.state is JobState.COMPLETED for s in statuses)

            await wait_until(
                all_done, message="every acknowledged job completes after the restart", timeout=30
            )
        assert len(accepted) == 100
