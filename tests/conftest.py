"""Servers shared by every test directory: one Redis 7 and one Valkey 8 per session, and one
cluster of each (3 masters, 3 replicas) for the tests that ask for it.

``REDIS_URL`` / ``VALKEY_URL`` / ``REDIS_CLUSTER_URL`` / ``VALKEY_CLUSTER_URL``
point the tests at running servers instead. Without a server binary the tests
skip, unless ``JOBQUEUE_REQUIRE_SERVERS=1`` (CI), where they fail. Tests
isolate themselves with a prefix of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.server_support import cluster_url, server_or_skip
from tools.servers import ServerKind, ServerProcess

_URL_ENV: dict[ServerKind, str] = {"redis": "REDIS_URL", "valkey": "VALKEY_URL"}


def _server_url(kind: ServerKind) -> Iterator[str]:
    url = os.environ.get(_URL_ENV[kind])
    if url:
        yield url
        return
    server_or_skip(kind)
    with ServerProcess.start_new(kind) as server:
        yield server.url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis 7 server for the whole session."""
    yield from _server_url("redis")


@pytest.fixture(scope="session")
def valkey_url() -> Iterator[str]:
    """A Valkey 8 server for the whole session."""
    yield from _server_url("valkey")


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """A Redis 7 cluster (3 masters, 3 replicas) for the whole session: ``redis+cluster://…/``."""
    yield from cluster_url("redis")


@pytest.fixture(scope="session")
def valkey_cluster_url() -> Iterator[str]:
    """A Valkey 8 cluster (3 masters, 3 replicas) for the whole session: ``valkey+cluster://…/``."""
    yield from cluster_url("valkey")
