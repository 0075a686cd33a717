"""PostgresStorage against the shared storage and queue conformance suites, a fresh schema per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from jobqueue_conformance import QueueSuite, StorageSuite
from jobqueue_postgres import PostgresStorage

pytestmark = pytest.mark.postgres


@pytest.mark.postgres
class TestPostgresStorage(StorageSuite):
    @pytest.fixture
    async def storage(self, postgres_url: str, schemas: Callable[[], str]) -> AsyncIterator[PostgresStorage]:
        async with PostgresStorage(postgres_url, schema=schemas()) as storage:
            yield storage


@pytest.mark.postgres
class TestPostgresQueue(QueueSuite):
    @pytest.fixture
    async def storage(self, postgres_url: str, schemas: Callable[[], str]) -> AsyncIterator[PostgresStorage]:
        async with PostgresStorage(postgres_url, schema=schemas()) as storage:
            yield storage
