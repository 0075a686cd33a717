"""The hostile-input tests run on every row of the storage table (``tests/conftest.py``).

Redis and Valkey: one throw-away server of each per session (``tools/servers.py``),
with the rules of ``tests/redis/conftest.py``: ``REDIS_URL`` / ``VALKEY_URL``
point at running servers instead; without a binary the tests skip, or fail
with ``JOBQUEUE_REQUIRE_SERVERS=1``. Each test gets a storage of its own: a
fresh key prefix or a fresh directory.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from jobqueue import JobState, Queue, Storage
from jobqueue.storage import Monitoring

from tests.conftest import Backend


def budget(examples: int) -> settings:
    """Hypothesis settings for one property test: its own example budget, no global profile.

    One storage and one worker serve every example of a test; each example
    cleans up after itself.
    """
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


_IN_CI = bool(os.environ.get("CI"))
THOROUGH = budget(100 if _IN_CI else 30)
"""Ids, payloads and durations: at least 100 examples per backend in CI (``.ci/run`` sets ``CI``)."""
QUICK = budget(25)
"""Refusals, which write nothing and are checked by many ``@example`` cases too."""


@pytest.fixture
async def storage(backend: Backend) -> AsyncIterator[Storage]:
    """A connected storage of the backend under test."""
    async with backend.make() as connected:
        yield connected


async def echo(job: Any) -> Any:
    """The handler of every round trip: the result is the payload."""
    return job.payload


async def assert_no_trace(storage: Storage, job_id: object = None) -> None:
    """The storage holds nothing: zero jobs in every state, and no record for ``job_id`` (a str)."""
    assert await monitor(storage).counts() == dict.fromkeys(JobState, 0)
    assert (await monitor(storage).list_jobs()).records == []
    if isinstance(job_id, str) and job_id:
        try:
            record = await storage.get(job_id)
        except ValueError:  # an invalid id: the storage refuses to look it up at all
            return
        assert record is None


def monitor(storage: Storage) -> Monitoring:
    """The storage's monitoring side (every storage of the table has it)."""
    assert isinstance(storage, Monitoring), f"{type(storage).__name__} has no Monitoring capability"
    return storage


async def forget(storage: Storage, job_id: str) -> None:
    """Remove a finished job: the contract has no delete, so its TTL is cut to 1 ms and it expires.

    ``not_found``: a tiny result TTL of the test itself expired it first.
    """
    assert await storage.update_ttl(job_id, 1) in ("updated", "not_found")

    async def gone() -> bool:
        return await storage.get(job_id) is None

    await wait_until(gone)


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds (fail after ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.005
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


async def warm_up(queue: Queue[Any, Any]) -> None:
    """Run one job through a started queue, so its worker is fully up before the test goes on.

    The stop of a queue still starting is covered on its own, by
    test_limits.test_stop_in_a_later_loop_run_than_start.
    """
    assert await queue.enqueue_and_wait("warm-up", None, timeout=10) is None
    await forget(queue.storage, "warm-up")


def worker_queue(storage: Storage, **options: Any) -> Queue[Any, Any]:
    """A queue on ``storage`` that runs ``echo``, with short timeouts so stop() is quick."""
    queue: Queue[Any, Any] = Queue(storage, block_timeout=options.pop("block_timeout", 0.5), **options)
    queue.execute(echo)
    return queue
