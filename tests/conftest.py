"""Servers shared by every test directory: one Redis 7, one Valkey 8 and one PostgreSQL per session.

``REDIS_URL`` / ``VALKEY_URL`` / ``JOBQUEUE_POSTGRES_URL`` point the tests at running servers instead.
Without a server binary the tests skip, unless ``JOBQUEUE_REQUIRE_SERVERS=1``
(CI), where they fail. Tests isolate themselves with a prefix of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.server_support import server_or_skip
from tools.servers import PostgresServer, ServerKind, ServerProcess, find_postgres_bin

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
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server for the whole session (tests isolate themselves with a schema of their own)."""
    url = os.environ.get("JOBQUEUE_POSTGRES_URL")
    if url:
        yield url
        return
    if find_postgres_bin() is None:
        message = "PostgreSQL (initdb, pg_ctl) is not installed (tools/install-servers.sh)"
        if os.environ.get("JOBQUEUE_REQUIRE_SERVERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with PostgresServer.start_new() as server:
        yield server.url
