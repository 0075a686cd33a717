"""Fixtures: one PostgreSQL per session (``postgres_url``, tests/conftest.py), a fresh schema per test.

``JOBQUEUE_POSTGRES_URL`` points the tests at a running server instead.
Without the PostgreSQL binaries the tests skip, unless ``JOBQUEUE_REQUIRE_SERVERS=1``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest
from jobqueue_postgres import PostgresStorage

from tests.server_support import postgres_or_skip
from tools.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres


@pytest.fixture
async def admin(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection to the server, to look at and tamper with rows."""
    conn = await asyncpg.connect(postgres_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def schemas(admin: asyncpg.Connection) -> AsyncIterator[Callable[[], str]]:
    """Makes schema names no other test uses, and drops those schemas afterwards."""
    made: list[str] = []

    def fresh() -> str:
        made.append(f"t{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield fresh
    for schema in made:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def schema(schemas: Callable[[], str]) -> str:
    """A schema no other test uses (dropped afterwards)."""
    return schemas()


@pytest.fixture
async def storage(postgres_url: str, schema: str) -> AsyncIterator[PostgresStorage]:
    """A connected storage in a fresh schema."""
    async with PostgresStorage(postgres_url, schema=schema) as storage:
        yield storage


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, to crash."""
    postgres_or_skip()
    with PostgresServer.start_new() as server:
        yield server
