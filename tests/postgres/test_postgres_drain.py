"""No stall at depth: a deep queue drains completely through one worker at high concurrency."""

from __future__ import annotations

import asyncio

import pytest
from jobqueue import Job, JobState, Queue
from jobqueue_postgres import PostgresStorage

pytestmark = pytest.mark.postgres


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("depth", "concurrency"), [(500, 50), (2000, 50), (300, 1)])
async def test_a_deep_queue_drains_without_a_stall(
    storage: PostgresStorage, depth: int, concurrency: int
) -> None:
    # The original's PgStorage leaves 10-20 of 500 or 2000 jobs unclaimed for a minute at concurrency 50.
    queue: Queue[int, int] = Queue(
        storage, concurrency=concurrency, block_timeout=1.0, visibility_timeout=30.0
    )
    done = asyncio.Event()
    finished = 0

    @queue.execute
    async def handler(job: Job[int]) -> int:
        nonlocal finished
        finished += 1
        if finished == depth:
            done.set()
        return job.payload

    for start in range(0, depth, 500):  # the whole depth is queued before the worker starts
        await queue.enqueue_many([(f"d{i}", i) for i in range(start, min(start + 500, depth))])
    async with queue:
        await asyncio.wait_for(done.wait(), timeout=240)
    counts = await storage.counts()
    assert counts[JobState.COMPLETED] == depth
    assert sum(counts.values()) == depth
