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

# Rules about the order of the whole queue. A partitioned queue keeps FIFO and priorities
# within each partition only (its documented trade-off), so these fail there, visibly.
_QUEUE_ORDER_RULES = {
    "test_list_jobs_filters_by_prefix_and_state",  # which jobs are processing depends on claim order
    "test_recover_stalled_requeues_expired_leases_at_the_head",
    "test_higher_priority_is_claimed_first_fifo_within_a_priority",
    "test_a_batch_claim_follows_priority_order",
    "test_enqueue_many_returns_outcomes_in_order",
    "test_enqueue_many_dedups_inside_one_batch",  # checks the claim order of the batch
    "test_dequeue_is_first_in_first_out",
    "test_batch_dequeue_claims_up_to_limit_oldest_first",
    "test_release_puts_the_job_back_at_the_head",
    "test_higher_priority_runs_first",
}


@pytest.fixture(params=_KINDS)
def cluster_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_cluster_url")
    return url


@pytest.fixture(params=_PARTITIONS)
async def cluster_storage(cluster_url: str, request: pytest.FixtureRequest) -> AsyncIterator[RedisStorage]:
    if request.param > 1 and request.node.originalname in _QUEUE_ORDER_RULES:
        request.applymarker(pytest.mark.xfail(reason="FIFO and priorities hold per partition only"))
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
