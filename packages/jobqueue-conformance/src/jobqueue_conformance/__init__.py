"""jobqueue_conformance: the shared conformance suites for jobqueue storages, as a pytest plugin.

A backend author subclasses a suite and provides one ``storage`` fixture::

    from jobqueue_conformance import QueueSuite, StorageSuite

    class TestMyStorage(StorageSuite):      # the storage contract, primitive by primitive
        @pytest.fixture
        async def storage(self):
            async with MyStorage() as storage:
                yield storage

    class TestMyQueue(QueueSuite):          # Queue and Reaper behaviour over that storage
        @pytest.fixture
        async def storage(self):
            async with MyStorage() as storage:
                yield storage

No pytest configuration is needed: the plugin runs these in pytest-asyncio's
strict mode too. Every assertion names the rule it checks (``rule: ...``);
tests of an optional capability the storage lacks are skipped with a reason
naming it. Override ``assert_namespace_empty`` to check physical cleanliness
in the backend itself.
"""

from ._helpers import next_event, wait_until
from ._queue_suite import QueueSuite
from ._storage_suite import StorageSuite

__all__ = [
    # storage suite
    "StorageSuite",
    # queue suite
    "QueueSuite",
    # helpers
    "next_event",
    "wait_until",
]
