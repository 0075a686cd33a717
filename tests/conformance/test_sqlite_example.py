"""The worked example under ``examples/sqlite_storage`` passes both conformance suites.

It also overrides the physical-cleanliness hook: after every result expired
and a reaper's pass, the database holds no row for the namespace.
"""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jobqueue.storage import Storage
from jobqueue_conformance import QueueSuite, StorageSuite

from examples.sqlite_storage import SqliteStorage, sqlite_storage


class TestSqliteStorage(StorageSuite):
    @pytest.fixture
    async def storage(self) -> AsyncIterator[SqliteStorage]:
        async with SqliteStorage() as storage:
            yield storage

    async def assert_namespace_empty(self, storage: Storage) -> None:
        await super().assert_namespace_empty(storage)
        assert isinstance(storage, SqliteStorage)
        await storage.recover_stalled()  # the sweep a running reaper makes
        db = storage._shared.db  # the example's own connection: look at the rows themselves
        assert db is not None
        for table in ("jobs", "workers", "locks"):
            rows = db.execute(f"SELECT count(*) FROM {table} WHERE ns = ?", (storage.name,)).fetchone()
            assert rows == (0,), f"rule: physical cleanliness: no {table} row is left once everything expired"


class TestSqliteQueue(QueueSuite):
    @pytest.fixture
    async def storage(self) -> AsyncIterator[SqliteStorage]:
        async with SqliteStorage() as storage:
            yield storage


def test_the_example_stays_under_400_lines_and_imports_only_the_storage_toolkit() -> None:
    source = Path(sqlite_storage.__file__).read_text()
    assert len(source.splitlines()) < 400, "its README promises a storage in under 400 lines"
    imported = {line.split()[1] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert {name for name in imported if name.startswith("jobqueue")} == {"jobqueue.storage"}
