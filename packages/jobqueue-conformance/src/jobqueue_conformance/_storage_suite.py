"""``StorageSuite``: every group of the storage conformance tests in one class."""

from __future__ import annotations

from typing import Any

import pytest

from ._plugin import conformance_suite
from ._storage_suite_batch import StorageBatchTests
from ._storage_suite_cleanliness import StorageCleanlinessTests
from ._storage_suite_leases import StorageLeaseTests
from ._storage_suite_lock import StorageLockTests
from ._storage_suite_monitoring import StorageMonitoringTests
from ._storage_suite_namespaces import StorageNamespaceTests
from ._storage_suite_pubsub import StoragePubSubTests
from ._storage_suite_queue import StorageQueueTests
from ._storage_suite_state import StorageStateTests
from ._storage_suite_workers import StorageWorkerTests

__all__ = ["StorageSuite"]


@conformance_suite
class StorageSuite(
    StorageQueueTests,
    StorageBatchTests,
    StorageStateTests,
    StorageLeaseTests,
    StoragePubSubTests,
    StorageWorkerTests,
    StorageMonitoringTests,
    StorageNamespaceTests,
    StorageLockTests,
    StorageCleanlinessTests,
):
    """The storage contract, primitive by primitive, each assertion naming the rule it checks.

    Subclass it in a test module and provide one fixture::

        class TestMyStorage(StorageSuite):
            @pytest.fixture
            async def storage(self):
                async with MyStorage(...) as storage:  # the default namespace of an empty store
                    yield storage

    Tests of an optional capability (``Monitoring``, ``LeaderLock``,
    ``ControlChannel``) are skipped, with a reason naming it, for a storage
    that does not declare it. Override ``assert_namespace_empty`` to check
    physical cleanliness in the backend itself (no key, file or row left).
    """

    @pytest.fixture
    def storage(self) -> Any:  # Any: subclasses override it with an async generator of their storage
        """Override: yield a fresh, connected storage (the default namespace of an empty store)."""
        pytest.fail(
            f"{type(self).__name__} must define an async `storage` fixture yielding a connected storage"
        )
