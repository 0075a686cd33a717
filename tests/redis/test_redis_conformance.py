"""RedisStorage on Redis 7 and on Valkey 8 against the shared storage and queue conformance suites."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from jobqueue.storage import Storage
from jobqueue_conformance import QueueSuite, StorageSuite, wait_until
from jobqueue_redis import RedisStorage
from redis.asyncio import Redis


def _fresh(url: str) -> RedisStorage:
    # A prefix of its own per test: an empty store on a shared server.
    return RedisStorage(url, prefix=f"c{uuid.uuid4().hex[:12]}")


class _RedisStorageSuite(StorageSuite):
    """The storage suite, with physical cleanliness checked on the server: no key left at all."""

    url: str

    async def assert_namespace_empty(self, storage: Storage) -> None:
        assert isinstance(storage, RedisStorage)
        pattern = f"{storage.keys.prefix}:*"
        raw = Redis.from_url(self.url, protocol=2)
        try:

            async def no_key_left() -> bool:
                return [key async for key in raw.scan_iter(match=pattern, count=1000)] == []

            # Checked before any other call: the keys must expire by themselves.
            await wait_until(no_key_left, message="rule: physical cleanliness: no key is left", timeout=10)
        finally:
            await raw.aclose()
        await super().assert_namespace_empty(storage)


@pytest.mark.redis
class TestRedisStorage(_RedisStorageSuite):
    @pytest.fixture
    async def storage(self, redis_url: str) -> AsyncIterator[RedisStorage]:
        self.url = redis_url
        async with _fresh(redis_url) as storage:
            yield storage


@pytest.mark.valkey
class TestValkeyStorage(_RedisStorageSuite):
    @pytest.fixture
    async def storage(self, valkey_url: str) -> AsyncIterator[RedisStorage]:
        self.url = valkey_url
        async with _fresh(valkey_url) as storage:
            yield storage


@pytest.mark.redis
class TestRedisQueue(QueueSuite):
    @pytest.fixture
    async def storage(self, redis_url: str) -> AsyncIterator[RedisStorage]:
        async with _fresh(redis_url) as storage:
            yield storage


@pytest.mark.valkey
class TestValkeyQueue(QueueSuite):
    @pytest.fixture
    async def storage(self, valkey_url: str) -> AsyncIterator[RedisStorage]:
        async with _fresh(valkey_url) as storage:
            yield storage
