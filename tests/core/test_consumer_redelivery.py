"""A job re-delivered to the worker still running its old attempt must not stop that worker's claims.

Found by the 10-minute chaos run on Redis: the old attempt, whose lease had
expired, ended after the new claim of the same job had replaced it in
the worker's table, freed a slot that was not free, and the fetch loop died on
``dequeue(limit=0)``; the worker kept heartbeating but never claimed again.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from jobqueue import Job, MemoryStorage, Queue

pytestmark = pytest.mark.memory


async def test_the_end_of_a_replaced_attempt_does_not_kill_the_fetch_loop() -> None:
    storage = MemoryStorage()
    queue: Queue[dict[str, int], str] = Queue(
        storage, concurrency=2, visibility_timeout=0.3, block_timeout=0.1
    )
    hold, old_may_end = asyncio.Event(), asyncio.Event()
    started: dict[tuple[str, int], asyncio.Event] = {}

    @queue.execute
    async def handle(job: Job[dict[str, int]]) -> str:
        started.setdefault((job.id, job.attempt), asyncio.Event()).set()
        if job.id == "a" and job.attempt == 1:
            time.sleep(0.6)  # noqa: ASYNC251  # the worker is starved past its lease, as under CPU load
            await storage.recover_stalled()  # what the reaper does: the job is queued again
            await old_may_end.wait()  # this attempt ends after the new attempts took both slots
            return "old"
        if job.id in ("a", "b"):
            await hold.wait()
        return job.id

    async def running(key: tuple[str, int]) -> None:
        while key not in started:  # noqa: ASYNC110  # the key's event does not exist before the call
            await asyncio.sleep(0.01)

    async with queue:
        await queue.enqueue("a", {})
        await asyncio.wait_for(running(("a", 2)), 20)  # re-delivered to this worker
        await queue.enqueue("b", {})
        await asyncio.wait_for(running(("b", 1)), 20)
        old_may_end.set()  # the replaced attempt ends with both slots taken
        await asyncio.sleep(0.2)
        hold.set()
        assert await queue.enqueue_and_wait("c", {}, timeout=20) == "c"  # still claiming
