"""RedisStorage on a 3+3 Redis cluster and a 3+3 Valkey cluster, unpartitioned and with
``partitions=4``, against the shared storage and queue conformance suites."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from jobqueue_conformance import QueueSuite, StorageSuite
from jobqueue_redis import RedisStorage

_KINDS = [
    pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.cluster], id="redis-cluster"),
    pytest.param("valkey", marks=[pytest.mark.valkey, pytest.mark.cluster], id="valkey-cluster"),
]
_PARTITIONS = [pytest.param(1, id="unpartitioned"), pytest.param(4, id="partitions4")]


@pytest.fixture(params=_KINDS)
def cluster_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_cluster_url")
    return url


@pytest.fixture(params=_PARTITIONS)
async def cluster_storage(cluster_url: str, request: pytest.FixtureRequest) -> AsyncIterator[RedisStorage]:
    # A prefix of its own per test: an empty store on a shared cluster.
    storage = RedisStorage(cluster_url, prefix=f"c{uuid.uuid4().hex[:12]}", partitions=request.param)
    async with storage:
        yield storage


class TestClusterStorage(StorageSuite):
    @pytest.fixture
    async def storage(self, cluster_storage: RedisStorage) -> RedisStorage:
        return cluster_storage


class TestClusterQueue(QueueSuite):
    @pytest.fixture
    async def storage(self, cluster_storage: RedisStorage) -> RedisStorage:
        return cluster_storage
