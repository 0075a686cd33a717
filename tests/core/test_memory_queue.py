from collections.abc import AsyncIterator

import pytest
from jobqueue import MemoryStorage
from jobqueue_conformance import QueueSuite

pytestmark = pytest.mark.memory


class TestMemoryQueue(QueueSuite):
    @pytest.fixture
    async def storage(self) -> AsyncIterator[MemoryStorage]:
        async with MemoryStorage() as storage:
            yield storage
