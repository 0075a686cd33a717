from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from jobqueue import MemoryStorage, Storage


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.memory)])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[Storage]:
    """A fresh, connected storage of each kind the dashboard is tested on."""
    async with MemoryStorage() as storage:
        yield storage
