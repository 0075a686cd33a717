"""Physical cleanliness with no further call; the consumer path's round trips and commands per job."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from jobqueue import Queue
from jobqueue.storage import Channel, Finish, NewJob
from jobqueue_conformance import wait_until
from jobqueue_redis import RedisStorage
from redis.asyncio import Redis

from tests.server_support import server_or_skip
from tools.servers import ServerKind, ServerProcess

JOBS = 2000


async def _keys(raw: Redis, prefix: str) -> list[bytes]:
    return [key async for key in raw.scan_iter(match=f"{prefix}:*", count=1000)]


async def _no_key_left(raw: Redis, prefix: str, *, timeout: float) -> None:
    async def gone() -> bool:
        return await _keys(raw, prefix) == []

    await wait_until(gone, message=f"no key of {prefix} remains", timeout=timeout, interval=0.1)


@pytest.mark.slow
async def test_finished_jobs_leave_no_key_once_their_ttl_passed(
    storage: RedisStorage, raw: Redis, prefix: str
) -> None:
    await storage.register_worker("w", 1000)  # and never again: the registry expires by itself too
    for start in range(0, JOBS, 500):
        outcomes = await storage.enqueue_many(
            [NewJob(f"job:{i}", b"payload") for i in range(start, start + 500)]
        )
        assert all(outcome.accepted for outcome in outcomes)
    done = 0
    while done < JOBS:
        claims = await storage.dequeue("w", lease_ms=30_000, timeout_ms=1000, limit=100)
        assert claims, f"queue ran dry after {done} of {JOBS} jobs"
        finishes = [
            Finish.complete(c.id, b"result", 500) if i % 2 else Finish.fail(c.id, b"error", 500)
            for i, c in enumerate(claims)
        ]
        assert all(await storage.finish_many("w", finishes))
        done += len(claims)
    assert {key.rsplit(b":", 1)[-1] for key in await _keys(raw, prefix)} >= {b"completed", b"failed", b"jobs"}
    await _no_key_left(raw, prefix, timeout=20)  # no call of any kind meanwhile


@pytest.mark.slow
async def test_a_queue_with_a_short_result_ttl_leaves_no_key(
    server_url: str, raw: Redis, prefix: str
) -> None:
    async with RedisStorage(server_url, prefix=prefix) as storage:
        queue: Queue[int, int] = Queue(
            storage, concurrency=4, result_ttl=0.5, max_attempts=1, block_timeout=0.5
        )

        @queue.execute
        async def handle(job: Any) -> int:
            if job.payload % 5 == 0:
                raise ValueError("a failure is kept for result_ttl too")
            return int(job.payload) * 2

        async with queue:
            await queue.enqueue_many([(f"j{i}", i) for i in range(100)])
            assert await queue.enqueue_and_wait("last", 21, timeout=10) == 42

            async def all_finished() -> bool:
                statuses = [await queue.get_status(f"j{i}") for i in (1, 5, 99)]
                return all(s is None or s.state.is_terminal for s in statuses)

            await wait_until(all_finished, message="every job finished", timeout=20)
    await _no_key_left(raw, prefix, timeout=20)


async def test_a_lapsed_worker_leaves_the_registry_without_list_workers(
    storage: RedisStorage, raw: Redis
) -> None:
    workers, infos = storage.keys.fixed("workers"), storage.keys.fixed("workerinfo")
    await storage.register_worker("short", 300, b"short's schedules")
    await storage.register_worker("long", 20_000, b"long's schedules")
    loop = asyncio.get_running_loop()
    registered_at = loop.time()

    async def short_is_gone() -> bool:
        await storage.register_worker("long", 20_000, b"long's schedules")  # any heartbeat prunes lapsed ones
        return await raw.zscore(workers, "short") is None

    await wait_until(short_is_gone, message="the lapsed registration is pruned by a heartbeat", timeout=10)
    assert loop.time() - registered_at >= 0.25
    assert await raw.hkeys(storage.keys.fixed("heartbeats")) == [b"long"]
    assert await raw.hkeys(infos) == [b"long"]
    await storage.register_worker("long", 300, b"long's schedules")  # the last worker lapses in 300 ms
    await storage.register_worker("gone", 60_000, b"gone's schedules")
    await storage.unregister_worker("gone")  # the registry's expiry follows the workers that remain
    assert await raw.hkeys(infos) == [b"long"]

    async def registry_expired() -> bool:
        return not await raw.exists(workers, storage.keys.fixed("heartbeats"), infos)

    await wait_until(registry_expired, message="the registry key expires natively", timeout=10)


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


@pytest.mark.parametrize(("limit", "max_commands"), [(1, 22), (50, 11)])
async def test_consumer_path_costs_at_most_two_round_trips_per_job(
    own_server: ServerProcess, own_raw: Redis, limit: int, max_commands: int
) -> None:
    jobs = 200
    async with RedisStorage(own_server.url, prefix=f"p{uuid.uuid4().hex[:8]}") as storage:
        await own_raw.config_resetstat()
        await storage.enqueue_many([NewJob(f"job-{i}", b"m") for i in range(jobs)])
        enqueue = await _command_calls(own_raw)
        await own_raw.config_resetstat()
        done = 0
        while done < jobs:
            claims = await storage.dequeue("w", lease_ms=30_000, timeout_ms=0, limit=limit)
            # the whole batch in one finish call: one script, one round trip
            stored = await storage.finish_many("w", [Finish.complete(c.id, b"r", 60_000) for c in claims])
            assert all(stored)
            done += len(claims)
        calls = await _command_calls(own_raw)
    scripts = calls.get("evalsha", 0) + calls.get("eval", 0)
    inner = sum(calls.values()) - scripts
    print(
        f"\n{own_server.kind} limit={limit}: {scripts / jobs:.2f} round trips per job, "
        f"{inner / jobs:.2f} Redis commands per job inside the scripts: {calls}; "
        f"enqueue_many of {jobs}: {enqueue}"
    )
    assert calls.get("bzpopmin", 0) == 0, "no blocking call while the queue is not empty"
    assert scripts == 2 * -(-jobs // limit), "one claim script and one finish script per batch"
    assert scripts / jobs <= 2
    assert inner / jobs <= max_commands, f"at most {max_commands} Redis commands per job (the original: 22)"


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


async def test_an_enqueue_batch_sends_one_key_per_job_and_one_argument_in_all(
    own_server: ServerProcess, own_raw: Redis
) -> None:
    """Packing the command is the producer's main cost: the jobs ride in one msgpack argument."""
    jobs = 200
    await own_raw.config_set("slowlog-log-slower-than", 0)  # log every command, with its arguments
    try:
        async with RedisStorage(own_server.url, prefix=f"p{uuid.uuid4().hex[:8]}") as storage:
            await own_raw.slowlog_reset()
            batch = [NewJob(f"job-{i}", b"m", delay_ms=i % 2, priority=i % 3) for i in range(jobs)]
            assert all(outcome.accepted for outcome in await storage.enqueue_many(batch))
            log = await own_raw.execute_command("SLOWLOG", "GET", 1000)  # type: ignore[no-untyped-call]  # redis-py: unannotated; raw entries
    finally:
        await own_raw.config_set("slowlog-log-slower-than", 10_000)
    [args] = [entry[3] for entry in log if entry[3][0].upper() == b"EVALSHA"]
    # the log keeps 32 arguments, the last one saying how many more the call had
    last = args[-1].decode(errors="replace")
    count = (
        len(args) - 1 + int(last.split()[1].lstrip("(")) if last.endswith("more arguments)") else len(args)
    )
    fixed = len(storage.keys.fixed_all()) + len(storage.keys.channels())
    assert count == 3 + fixed + jobs + 1, (
        "EVALSHA sha numkeys, fixed keys and channels, a key per job, one more"
    )
