"""One table of storages for the hostile-input tests: memory, Redis 7, Valkey 8 and files.

Redis and Valkey: one throw-away server of each per session (``tools/servers.py``),
with the rules of ``tests/redis/conftest.py``: ``REDIS_URL`` / ``VALKEY_URL``
point at running servers instead; without a binary the tests skip, or fail
with ``JOBQUEUE_REQUIRE_SERVERS=1``. Each test gets a storage of its own: a
fresh key prefix or a fresh directory.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from jobqueue import JobState, MemoryStorage, Queue, Storage
from jobqueue_file import FileStorage
from jobqueue_redis import RedisStorage

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: tests/ and tools/


settings.register_profile(
    "hostile",
    max_examples=15,
    deadline=None,
    # One storage and one worker serve every example of a test; each example cleans up after itself.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("hostile")

BACKENDS = [
    pytest.param("memory", marks=pytest.mark.memory, id="memory"),
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
    pytest.param("valkey", marks=pytest.mark.valkey, id="valkey"),
    pytest.param("file", marks=pytest.mark.file, id="file"),
]


@dataclass(frozen=True)
class Backend:
    """How to build a fresh storage of one kind, and where its raw data lives."""

    kind: str
    server_url: str | None
    directory: Path
    prefix: str

    def make(self) -> Storage:
        """A new, unconnected storage that no other test shares."""
        if self.kind == "memory":
            return MemoryStorage()
        if self.kind == "file":
            return FileStorage(self.directory)
        assert self.server_url is not None
        return RedisStorage(self.server_url, prefix=self.prefix)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Every test that uses it runs on each storage."""
    kind: str = request.param
    url = request.getfixturevalue(f"{kind}_url") if kind in ("redis", "valkey") else None
    return Backend(kind, url, tmp_path / "queue", f"h{uuid.uuid4().hex[:12]}")


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
    assert await storage.counts() == dict.fromkeys(JobState, 0)
    assert (await storage.list_jobs()).records == []
    if isinstance(job_id, str) and job_id:
        try:
            record = await storage.get(job_id)
        except ValueError:  # an invalid id: the storage refuses to look it up at all
            return
        assert record is None


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
    assert await queue.storage.delete("warm-up")


def worker_queue(storage: Storage, **options: Any) -> Queue[Any, Any]:
    """A queue on ``storage`` that runs ``echo``, with short timeouts so stop() is quick."""
    queue: Queue[Any, Any] = Queue(storage, block_timeout=options.pop("block_timeout", 0.5), **options)
    queue.execute(echo)
    return queue
