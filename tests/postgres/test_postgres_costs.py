"""Statements per job, counted by the server (pg_stat_statements): the cost the design promises."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from jobqueue import Job, Queue
from jobqueue_postgres import PostgresStorage

pytestmark = pytest.mark.postgres

JOBS = 300


# What marks each statement of jobqueue_postgres._sql in the server's view of it.
MARKERS = {
    "claimed AS": "claim",
    "inserted AS": "enqueue",
    "finished AS": "finish",
    "registered AS": "heartbeat",
    "stalled AS": "recover",
    "gone_jobs AS": "sweep",
    "holds AS": "unregister",
}


async def _statements(admin: asyncpg.Connection, schema: str) -> dict[str, int]:
    """Calls per statement that names the schema, by primitive."""
    rows = await admin.fetch(
        "SELECT query, calls FROM pg_stat_statements WHERE query LIKE $1", f'%"{schema}".%'
    )
    counts: dict[str, int] = {}
    for query, calls in rows:
        name = next(
            (name for marker, name in MARKERS.items() if marker in query), " ".join(query.split()[:4])
        )
        counts[name] = counts.get(name, 0) + calls
    return counts


@pytest.fixture
async def counting(admin: asyncpg.Connection) -> asyncpg.Connection:
    """``admin``, once ``pg_stat_statements`` is known to count (skips when the server cannot)."""
    if not await admin.fetchval(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
    ):
        pytest.skip("pg_stat_statements is not available on this server")
    try:
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await admin.fetchval("SELECT count(*) FROM pg_stat_statements")
    except asyncpg.ObjectNotInPrerequisiteStateError:
        pytest.skip("pg_stat_statements is not in shared_preload_libraries on this server")
    return admin


async def test_a_job_costs_three_statements(
    postgres_url: str, schema: str, counting: asyncpg.Connection
) -> None:
    admin = counting
    async with PostgresStorage(postgres_url, schema=schema) as storage:
        queue: Queue[int, int] = Queue(storage, concurrency=10, block_timeout=5.0)
        done = asyncio.Event()
        finished = 0

        @queue.execute
        async def handler(job: Job[int]) -> int:
            nonlocal finished
            finished += 1
            if finished == JOBS:
                done.set()
            return job.payload

        before = await _statements(admin, schema)
        async with queue:
            for i in range(JOBS):
                await queue.enqueue(f"j{i}", i)  # one at a time: the worker claims as they come
            await asyncio.wait_for(done.wait(), 120)
        after = await _statements(admin, schema)
    calls = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    total = sum(calls.values())
    print(f"\n{total / JOBS:.2f} statements per job:", {k: v for k, v in calls.items() if v})
    assert total / JOBS <= 3.5, calls  # enqueue, claim and finish each at most once per job, plus heartbeats


async def test_a_request_costs_one_claim(
    postgres_url: str, schema: str, counting: asyncpg.Connection
) -> None:
    # A worker that took the last ready job waits for the next notification without asking again:
    # one claim per sequential request, not two (the second would find nothing).
    requests = 60
    async with PostgresStorage(postgres_url, schema=schema) as storage:
        queue: Queue[int, int] = Queue(storage, concurrency=10, block_timeout=5.0)

        @queue.execute
        async def handler(job: Job[int]) -> int:
            return job.payload

        async with queue:
            await queue.enqueue_and_wait(
                "warm", 0, timeout=30
            )  # the channel listened to, statements prepared
            before = await _statements(counting, schema)
            for i in range(requests):
                assert await queue.enqueue_and_wait(f"r{i}", i, timeout=30) == i
            after = await _statements(counting, schema)
    claims = after.get("claim", 0) - before.get("claim", 0)
    print(f"\n{claims / requests:.2f} claims per request")
    # a few more for the 2 s safety re-check of a blocked claim on a slow machine
    assert requests <= claims <= requests * 1.1 + 3, claims
