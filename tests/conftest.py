"""Servers shared by every test directory: one Redis 7, one Valkey 8 and one PostgreSQL per session,
and one cluster of each (3 masters, 3 replicas) for the tests that ask for it.

``REDIS_URL`` / ``VALKEY_URL`` / ``REDIS_CLUSTER_URL`` / ``VALKEY_CLUSTER_URL`` / ``JOBQUEUE_POSTGRES_URL``
point the tests at running servers instead. Without a server binary the tests
skip, unless ``JOBQUEUE_REQUIRE_SERVERS=1`` (CI), where they fail. Tests
isolate themselves with a prefix (PostgreSQL: a schema) of their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from jobqueue import MemoryStorage, Storage
from jobqueue_file import FileStorage
from jobqueue_postgres import PostgresStorage
from jobqueue_redis import RedisStorage

from tests.server_support import cluster_url, postgres_or_skip, server_or_skip
from tools.postgres_server import PostgresServer
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


# The one table of storages: tests that run on every backend take the ``backend`` fixture.
BACKENDS = [
    pytest.param("memory", marks=pytest.mark.memory, id="memory"),
    pytest.param("redis", marks=pytest.mark.redis, id="redis"),
    pytest.param("valkey", marks=pytest.mark.valkey, id="valkey"),
    pytest.param("file", marks=pytest.mark.file, id="file"),
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
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
        if self.kind == "postgres":
            return PostgresStorage(self.server_url, schema=self.prefix)  # a schema of its own
        return RedisStorage(self.server_url, prefix=self.prefix)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Every test that uses it runs on each storage."""
    kind: str = request.param
    url = request.getfixturevalue(f"{kind}_url") if kind in ("redis", "valkey", "postgres") else None
    return Backend(kind, url, tmp_path / "queue", f"h{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the whole session (tests isolate themselves with a schema of their own)."""
    url = os.environ.get("JOBQUEUE_POSTGRES_URL")
    if url:
        yield url
        return
    postgres_or_skip()
    with PostgresServer.start_new() as server:
        yield server.url
