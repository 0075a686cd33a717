"""FileStorage against the shared conformance suites (storage protocol, then Queue and Reaper)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jobqueue_conformance import QueueSuite, StorageSuite
from jobqueue_file import FileStorage

pytestmark = pytest.mark.file


class TestFileStorage(StorageSuite):
    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[FileStorage]:
        async with FileStorage(tmp_path / "queue") as storage:
            yield storage


class TestFileQueue(QueueSuite):
    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[FileStorage]:
        async with FileStorage(tmp_path / "queue") as storage:
            yield storage
