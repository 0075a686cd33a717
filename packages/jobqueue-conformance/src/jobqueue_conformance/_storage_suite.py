"""``StorageSuite``: every group of the storage conformance tests in one class."""

from __future__ import annotations

from typing import Any

import pytest

from ._storage_suite_lock import StorageLockTests
from ._storage_suite_monitoring import StorageMonitoringTests
from ._storage_suite_namespaces import StorageNamespaceTests
from ._storage_suite_pubsub import StoragePubSubTests
from ._storage_suite_queue import StorageQueueTests
from ._storage_suite_state import StorageStateTests
from ._storage_suite_workers import StorageWorkerTests

__all__ = ["StorageSuite"]


@pytest.mark.asyncio
@pytest.mark.jobqueue_conformance
class StorageSuite(
    StorageQueueTests,
    StorageStateTests,
    StoragePubSubTests,
    StorageWorkerTests,
    StorageMonitoringTests,
    StorageNamespaceTests,
    StorageLockTests,
):
    """The storage protocol, method by method, each assertion naming the rule it checks.

    Subclass it in a test module and provide one fixture::

        class TestMyStorage(StorageSuite):
            @pytest.fixture
            async def storage(self):
                async with MyStorage(...) as storage:  # the default namespace of an empty store
                    yield storage

    Tests of the optional ``LeaderLock`` capability are skipped, with the
    reason, for a storage that is not a ``LeaderLock``.
    """

    @pytest.fixture
    def storage(self) -> Any:  # Any: subclasses override it with an async generator of their storage
        """Override: yield a fresh, connected storage (the default namespace of an empty store)."""
        pytest.fail(
            f"{type(self).__name__} must define an async `storage` fixture yielding a connected storage"
        )
