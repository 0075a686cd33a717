"""FileStorage against the shared conformance suites (storage protocol, then Queue and Reaper)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jobqueue.storage import Storage
from jobqueue_conformance import QueueSuite, StorageSuite, wait_until
from jobqueue_file import FileStorage

pytestmark = pytest.mark.file

HELD = ("jobs", "queue", "scheduled", "processing", "expiry", "workers")
"""The directories that hold a namespace's jobs and workers (the rest: its fixed lock and log files)."""


def held_files(storage: FileStorage) -> list[str]:
    """Every record, entry, registration and worker directory of the storage's namespace."""
    space = Path(storage.path) / storage.name  # the test namespaces need no encoding
    return sorted(str(path.relative_to(space)) for sub in HELD for path in (space / sub).rglob("*"))


class TestFileStorage(StorageSuite):
    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[FileStorage]:
        async with FileStorage(tmp_path / "queue") as storage:
            yield storage

    async def assert_namespace_empty(self, storage: Storage) -> None:
        """No file is left: the storage's own sweep deletes them within seconds, unasked."""
        assert isinstance(storage, FileStorage)

        async def nothing_left() -> bool:
            return held_files(storage) == []

        await wait_until(nothing_left, message="rule: physical cleanliness: files are left", timeout=5)
        await super().assert_namespace_empty(storage)


class TestFileQueue(QueueSuite):
    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[FileStorage]:
        async with FileStorage(tmp_path / "queue") as storage:
            yield storage
