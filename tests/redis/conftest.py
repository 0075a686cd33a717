"""Fixtures: one redis-server and one valkey-server per session, a fresh prefix per test.

``REDIS_URL`` / ``VALKEY_URL`` point the tests at running servers instead.
Without a server binary the tests skip, unless ``JOBQUEUE_REQUIRE_SERVERS=1``
(CI), where they fail.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from jobqueue_redis import RedisStorage
from redis.asyncio import Redis


@pytest.fixture(
    params=[pytest.param("redis", marks=pytest.mark.redis), pytest.param("valkey", marks=pytest.mark.valkey)]
)
def server_url(request: pytest.FixtureRequest) -> str:
    """Each test that uses it runs once on Redis and once on Valkey."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def prefix() -> str:
    """A prefix no other test uses, so tests share a server without seeing each other."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def storage(server_url: str, prefix: str) -> AsyncIterator[RedisStorage]:
    """A connected storage on a fresh prefix."""
    async with RedisStorage(server_url, prefix=prefix) as storage:
        yield storage


@pytest.fixture
async def raw(server_url: str) -> AsyncIterator[Redis]:
    """A plain redis-py client on the same server, to look at keys."""
    client = Redis.from_url(server_url, protocol=2)
    try:
        yield client
    finally:
        await client.aclose()
