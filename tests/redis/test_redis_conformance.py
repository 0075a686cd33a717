"""RedisStorage on Redis 7 and on Valkey 8 against the shared storage and queue conformance suites."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from jobqueue_conformance import QueueSuite, StorageSuite
from jobqueue_redis import RedisStorage


def _fresh(url: str) -> RedisStorage:
    # A prefix of its own per test: an empty store on a shared server.
    return RedisStorage(url, prefix=f"c{uuid.uuid4().hex[:12]}")


@pytest.mark.redis
class TestRedisStorage(StorageSuite):
    @pytest.fixture
    async def storage(self, redis_url: str) -> AsyncIterator[RedisStorage]:
        async with _fresh(redis_url) as storage:
            yield storage


@pytest.mark.valkey
class TestValkeyStorage(StorageSuite):
    @pytest.fixture
    async def storage(self, valkey_url: str) -> AsyncIterator[RedisStorage]:
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
