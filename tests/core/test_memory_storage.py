"""MemoryStorage: the storage conformance suite, plus what only the memory backend promises."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest
from jobqueue import JobState, MemoryStorage, StorageError, storage_from_url
from jobqueue.storage import Channel, JobRecord, StorageEvent
from jobqueue_conformance import StorageSuite, wait_until

pytestmark = pytest.mark.memory


class TestMemoryStorage(StorageSuite):
    @pytest.fixture
    async def storage(self) -> AsyncIterator[MemoryStorage]:
        async with MemoryStorage() as storage:
            yield storage


@pytest.mark.parametrize("url", ["memory://", "memory://?", "MEMORY://"])
def test_from_url_builds_an_empty_default_namespace(url: str) -> None:
    storage = MemoryStorage.from_url(url)
    assert isinstance(storage, MemoryStorage)
    assert storage.name == "default"


def test_storage_from_url_finds_the_memory_entry_point() -> None:
    first, second = storage_from_url("memory://"), storage_from_url("memory://")
    assert isinstance(first, MemoryStorage) and isinstance(second, MemoryStorage)
    assert first._store is not second._store, "each memory:// url is a store of its own"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("memory://?prefix=x", "unknown storage url option"),
        ("memory://host", "no host or path"),
        ("memory:///some/path", "no host or path"),
        ("redis://localhost", "not a memory:// url"),
    ],
)
def test_from_url_rejects_options_hosts_and_other_schemes(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        MemoryStorage.from_url(url)


def test_from_url_rejects_a_non_string() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        MemoryStorage.from_url(b"memory://")  # type: ignore[arg-type]  # the error under test


@pytest.mark.parametrize("name", ["", 42])
def test_namespace_name_must_be_a_non_empty_string(name: object) -> None:
    with pytest.raises(ValueError, match="namespace name"):
        MemoryStorage().namespace(name)  # type: ignore[arg-type]  # the error under test


async def test_namespace_views_share_one_store_and_one_connection_count() -> None:
    root = MemoryStorage()
    view = root.namespace("jobs")
    await view.connect()
    await root.connect()
    await root.namespace("jobs").enqueue("job-1", b"m")
    assert await view.get("job-1") is not None, "views of one namespace see the same jobs"
    assert await root.get("job-1") is None, "other namespaces do not"
    await view.disconnect()
    assert await root.namespace("jobs").get("job-1") is not None, (
        "the store stays open while one view holds it"
    )
    await root.disconnect()
    with pytest.raises(StorageError, match="not connected"):
        await view.get("job-1")
    await root.disconnect()  # one disconnect too many is a no-op
    async with root:
        assert await view.get("job-1") is not None, "data survives a reconnect of the same store"


async def test_operations_before_connect_raise_a_storage_error() -> None:
    storage = MemoryStorage()
    with pytest.raises(StorageError, match="call connect"):
        await storage.enqueue("job-1", b"m")


async def test_last_disconnect_wakes_blocked_dequeues_and_ends_subscriptions() -> None:
    storage = MemoryStorage()
    await storage.connect()
    async with storage.subscribe(Channel.EVENTS) as events:
        waiter = asyncio.create_task(storage.dequeue("w", lease_ms=1000, timeout_ms=60_000))

        async def read() -> StorageEvent:
            return await anext(events)

        reader = asyncio.create_task(read())
        await asyncio.sleep(0.01)  # let both block
        await storage.disconnect()
        with pytest.raises(StorageError, match="not connected"):
            await asyncio.wait_for(waiter, 2)
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(reader, 2)


async def test_no_tasks_or_waiters_are_left_behind() -> None:
    before = asyncio.all_tasks()
    async with MemoryStorage() as storage:
        await storage.enqueue("job-1", b"m", delay_ms=10)
        await storage.dequeue("w", lease_ms=1000, timeout_ms=1000)
        await storage.complete("job-1", "w", b"r", 10)
        await storage.dequeue("w", lease_ms=1000, timeout_ms=20)
        assert asyncio.all_tasks() == before, "the memory storage starts no background task"
        state = storage._store.state("default")
        assert not state._waiters, "a finished dequeue leaves no waiter"
    assert asyncio.all_tasks() == before


async def test_expired_records_are_purged_not_just_hidden() -> None:
    async with MemoryStorage() as storage:
        for i in range(100):
            await storage.enqueue(f"job-{i}", b"m")
        claims = await storage.dequeue("w", lease_ms=1000, timeout_ms=0, limit=100)
        for c in claims:
            await storage.complete(c.id, "w", b"r", 1)

        async def all_expired() -> bool:
            return (await storage.counts())[JobState.COMPLETED] == 0

        await wait_until(all_expired, message="1 ms results expire")
        state = storage._store.state("default")
        assert len(state.jobs) == 0 and state._expiry == [], "expired records leave nothing in memory"


async def test_kept_results_are_not_tracked_by_the_garbage_collector() -> None:
    def tracked_records() -> int:
        gc.collect()
        return sum(isinstance(o, JobRecord) for o in gc.get_objects())

    async with MemoryStorage() as storage:
        before = tracked_records()
        for i in range(100):
            await storage.enqueue(f"job-{i}", b"m")
        for claim in await storage.dequeue("w", lease_ms=1000, timeout_ms=0, limit=100):
            await storage.complete(claim.id, "w", b"r", 60_000)
        assert tracked_records() == before, "a full collection never walks results kept for their TTL"
        record = await storage.get("job-7")
        assert record is not None
        assert (record.state, record.result, record.attempts) == (JobState.COMPLETED, b"r", 1)


async def test_cancel_does_not_leak_schedule_entries_into_claims() -> None:
    async with MemoryStorage() as storage:
        await storage.enqueue("job-1", b"first", delay_ms=50)
        await storage.cancel("job-1")
        await storage.enqueue("job-1", b"second")
        claims = await storage.dequeue("w", lease_ms=1000, timeout_ms=0)
        assert [(c.id, c.message) for c in claims] == [("job-1", b"second")]
        assert await storage.dequeue("w", lease_ms=1000, timeout_ms=200) == [], (
            "the stale schedule entry of the cancelled job must not requeue the new one"
        )


async def test_purge_rejects_live_states() -> None:
    async with MemoryStorage() as storage:
        with pytest.raises(ValueError, match="only deletes completed and failed"):
            await storage.purge([JobState.QUEUED])


async def test_subscribe_needs_a_channel() -> None:
    async with MemoryStorage() as storage:
        with pytest.raises(ValueError, match="at least one channel"):
            storage.subscribe()


async def test_list_jobs_rejects_a_foreign_cursor() -> None:
    async with MemoryStorage() as storage:
        with pytest.raises(ValueError, match="cursor"):
            await storage.list_jobs(cursor="not-a-cursor")
