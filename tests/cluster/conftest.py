"""Fixtures of the cluster tests: the session clusters (Redis and Valkey), and private ones to break.

The session clusters come from the root conftest (``redis_cluster_url`` /
``valkey_cluster_url``); a test that kills nodes starts a cluster of its own
with ``private_cluster`` so the others never see a failover.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.server_support import cluster_or_skip
from tools.clusters import ClusterProcess
from tools.servers import ServerKind

_KINDS = [
    pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.cluster]),
    pytest.param("valkey", marks=[pytest.mark.valkey, pytest.mark.cluster]),
]


@pytest.fixture(params=_KINDS)
def kind(request: pytest.FixtureRequest) -> ServerKind:
    """Each test that uses it runs once on Redis and once on Valkey."""
    value: ServerKind = request.param
    return value


@pytest.fixture
def cluster_url(kind: ServerKind, request: pytest.FixtureRequest) -> str:
    """The session cluster of ``kind``: ``redis+cluster://…/`` or ``valkey+cluster://…/``."""
    url: str = request.getfixturevalue(f"{kind}_cluster_url")
    return url


@pytest.fixture
def prefix() -> str:
    """A prefix no other test uses, so tests share a cluster without seeing each other."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def private_cluster(kind: ServerKind) -> Iterator[Callable[..., ClusterProcess]]:
    """A factory of clusters for this test only (``ClusterProcess`` options), closed at the end.

    Starting one blocks for a few seconds: async tests call it through ``asyncio.to_thread``.
    """
    cluster_or_skip(kind)
    started: list[ClusterProcess] = []

    def start(**options: object) -> ClusterProcess:
        cluster = ClusterProcess.start_new(kind, **options)
        started.append(cluster)
        return cluster

    try:
        yield start
    finally:
        for cluster in started:
            cluster.close()
