"""Native expiry leaves no keys behind; the consumer path's round trips and commands per job."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from jobqueue import Channel, JobState
from jobqueue_conformance import wait_until
from jobqueue_redis import RedisStorage
from redis.asyncio import Redis

from tests.server_support import server_or_skip
from tools.servers import ServerKind, ServerProcess

JOBS = 2000


async def _key_count(raw: Redis, pattern: str) -> int:
    return len([key async for key in raw.scan_iter(match=pattern, count=1000)])


async def _drain(storage: RedisStorage, worker: str, jobs: int, *, limit: int, ttl_ms: int) -> None:
    done = 0
    while done < jobs:
        claims = await storage.dequeue(worker, lease_ms=30_000, timeout_ms=1000, limit=limit)
        assert claims, f"queue ran dry after {done} of {jobs} jobs"
        finishes = [
            storage.complete(c.id, worker, b"result", ttl_ms)
            if i % 2
            else storage.fail(c.id, worker, b"error", ttl_ms)
            for i, c in enumerate(claims)
        ]
        assert all(await asyncio.gather(*finishes))
        done += len(claims)


@pytest.mark.slow
async def test_finished_jobs_leave_no_key_once_their_ttl_passed(
    storage: RedisStorage, raw: Redis, prefix: str
) -> None:
    await storage.register_worker("w", 60_000)
    outcomes = await asyncio.gather(*(storage.enqueue(f"job:{i}", b"payload") for i in range(JOBS)))
    assert all(outcome.accepted for outcome in outcomes)
    await _drain(storage, "w", JOBS, limit=100, ttl_ms=2500)
    counts = await storage.counts()
    assert counts[JobState.QUEUED] == counts[JobState.PROCESSING] == 0
    assert counts[JobState.COMPLETED] > 0 and counts[JobState.FAILED] > 0
    assert await _key_count(raw, f"{prefix}:*:job:*") > 0

    async def job_keys_gone() -> bool:
        return await _key_count(raw, f"{prefix}:*:job:*") == 0

    await wait_until(job_keys_gone, message="every job hash expires natively", timeout=20)
    assert all(count == 0 for count in (await storage.counts()).values()), "indexes are pruned too"
    await storage.unregister_worker("w")
    assert [key async for key in raw.scan_iter(match=f"{prefix}:*")] == [], "no key of the queue remains"


# ---------------------------------------------------------------------------- costs on a server of its own


@pytest.fixture(
    params=[pytest.param("redis", marks=pytest.mark.redis), pytest.param("valkey", marks=pytest.mark.valkey)]
)
def own_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """A server only this test talks to, so its statistics count only this test's commands."""
    kind: ServerKind = request.param
    server_or_skip(kind)
    with ServerProcess.start_new(kind) as server:
        yield server


@pytest.fixture
async def own_raw(own_server: ServerProcess) -> AsyncIterator[Redis]:
    client = Redis.from_url(own_server.url, protocol=2)
    try:
        yield client
    finally:
        await client.aclose()


async def _command_calls(raw: Redis) -> dict[str, int]:
    stats: dict[str, Any] = await raw.info("commandstats")
    ignored = {"info", "config|resetstat", "config", "client|setinfo", "client", "hello", "select"}
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if name.removeprefix("cmdstat_") not in ignored
    }


@pytest.mark.parametrize("limit", [1, 50])
async def test_consumer_path_costs_at_most_two_round_trips_per_job(
    own_server: ServerProcess, own_raw: Redis, limit: int
) -> None:
    jobs = 200
    async with RedisStorage(own_server.url, prefix=f"p{uuid.uuid4().hex[:8]}") as storage:
        await asyncio.gather(*(storage.enqueue(f"job-{i}", b"m") for i in range(jobs)))
        await own_raw.config_resetstat()
        done = 0
        while done < jobs:
            claims = await storage.dequeue("w", lease_ms=30_000, timeout_ms=0, limit=limit)
            for claim in claims:  # one at a time: every script call is its own round trip
                assert await storage.complete(claim.id, "w", b"r", 60_000)
            done += len(claims)
        calls = await _command_calls(own_raw)
    scripts = calls.get("evalsha", 0) + calls.get("eval", 0)
    inner = sum(calls.values()) - scripts
    print(
        f"\n{own_server.kind} limit={limit}: {scripts / jobs:.2f} round trips per job, "
        f"{inner / jobs:.1f} commands per job inside the scripts: {calls}"
    )
    assert calls.get("blmove", 0) == 0, "no blocking call while the queue is not empty"
    assert scripts == jobs + -(-jobs // limit), "one claim script per batch plus one finish script per job"
    assert scripts / jobs <= 2
    assert inner / jobs <= 22, "fewer Redis commands per job than the original's 22"


async def test_one_process_uses_at_most_three_connections(own_server: ServerProcess, own_raw: Redis) -> None:
    name = f"jq{uuid.uuid4().hex[:8]}"
    url = f"{own_server.url}?client_name={name}"
    async with RedisStorage(url, prefix="a") as a, RedisStorage(url, prefix="b") as b:
        views = [a, a.namespace("other"), b, b.namespace("other")]
        async with a.subscribe(*Channel), b.namespace("other").subscribe(Channel.DONE):
            waiting = [
                asyncio.create_task(view.dequeue(f"w{i}", lease_ms=5000, timeout_ms=3000, limit=10))
                for i, view in enumerate(views)
            ]
            await asyncio.sleep(0.05)
            await asyncio.gather(*(view.enqueue(f"job-{j}", b"m") for view in views for j in range(25)))
            claimed = await asyncio.gather(*waiting)
            assert all(claims for claims in claimed), "every blocked dequeue got a job"
            clients = [c for c in await own_raw.client_list() if c.get("name") == name]
    assert len(clients) == 3, f"commands, blocking and pub/sub connections only: {clients}"
