"""Storages the dashboard tests run on: MemoryStorage, and Redis on a throw-away server.

``REDIS_URL`` points the Redis runs at a running server instead. Without
``redis-server`` they skip, unless ``JOBQUEUE_REQUIRE_SERVERS=1`` (CI).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from jobqueue import Storage, storage_from_url

from tests.server_support import server_or_skip
from tools.servers import ServerProcess


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server for the whole session (or ``$REDIS_URL``)."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server_or_skip("redis")
    with ServerProcess.start_new("redis") as server:
        yield str(server.url)


@pytest.fixture(
    params=[pytest.param("memory", marks=pytest.mark.memory), pytest.param("redis", marks=pytest.mark.redis)]
)
def storage_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty storage, once per kind (memory:// is new for every build)."""
    if request.param == "memory":
        return "memory://"
    base: str = request.getfixturevalue("redis_url")
    return f"{base}?prefix=tui{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    """A fresh, connected storage built from ``storage_url``."""
    async with storage_from_url(storage_url) as built:
        yield built
