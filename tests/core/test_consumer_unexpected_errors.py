"""A storage call that raises something other than ``StorageError`` must not kill a worker loop.

A storage with a bug, or a driver error the storage did not translate, once
ended the fetch loop silently: the worker kept heartbeating and never claimed
again. Now every loop logs it with its traceback, reports it as ``error``,
backs off and goes on, as it does for an outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import pytest
from jobqueue import Job, MemoryStorage, Queue
from jobqueue.storage import Claim, Revoked

pytestmark = pytest.mark.memory


class FlakyStorage(MemoryStorage):
    """A memory storage whose first dequeue and second heartbeat raise errors that are not ``StorageError``."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0
        self.heartbeats = 0

    async def _claim(self, worker_id: str, lease_ms: int, limit: int, timeout_ms: int) -> list[Claim]:
        self.claims += 1
        if self.claims == 1:
            raise RuntimeError("a bug in the storage")
        return await super()._claim(worker_id, lease_ms, limit, timeout_ms)

    async def _heartbeat(
        self, worker_id: str, ttl_ms: int | None, job_ids: Sequence[str], lease_ms: int, info: bytes
    ) -> dict[str, Revoked]:
        self.heartbeats += 1
        if self.heartbeats == 2:  # the first one registers the worker, in Queue.start
            raise ConnectionResetError("a driver error the storage did not translate")
        return await super()._heartbeat(worker_id, ttl_ms, job_ids, lease_ms, info)


async def _until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"{what} (not within {timeout} s)"
        await asyncio.sleep(0.01)


async def test_the_fetch_loop_survives_an_unexpected_error(caplog: pytest.LogCaptureFixture) -> None:
    storage = FlakyStorage()
    queue: Queue[dict[str, int], int] = Queue(storage, block_timeout=0.1)
    errors: list[BaseException] = []
    queue.on("error", errors.append)

    @queue.execute
    async def handle(job: Job[dict[str, int]]) -> int:
        return job.payload["x"] * 2

    with caplog.at_level(logging.ERROR, logger="jobqueue"):
        async with queue:
            assert await queue.enqueue_and_wait("a", {"x": 21}, timeout=20) == 42  # still claiming
    assert storage.claims >= 2
    assert [type(e) for e in errors] == [RuntimeError], "reported once, as an error event"
    logged = [r for r in caplog.records if "dequeue raised an unexpected RuntimeError" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None, "logged once, with its traceback"


async def test_the_lease_loop_survives_an_unexpected_error() -> None:
    storage = FlakyStorage()
    queue: Queue[dict[str, int], int] = Queue(storage, block_timeout=0.1, visibility_timeout=0.3)
    errors: list[BaseException] = []
    queue.on("error", errors.append)
    queue.execute(lambda job: 0)
    async with queue:
        # A heartbeat every 0.1 s: the loop raised on the second and keeps going.
        await _until(lambda: storage.heartbeats >= 5, "heartbeats go on after the error")
        workers = await storage.list_workers()
        assert [w.id for w in workers] == [queue.worker_id], "the worker is still registered"
    assert ConnectionResetError in [type(e) for e in errors]
