"""``QueueSuite``: the behaviour of ``Queue`` and ``Reaper`` over any storage."""

from __future__ import annotations

from ._queue_suite_dedup import DedupSuite
from ._queue_suite_outcomes import OutcomesSuite
from ._queue_suite_workers import WorkersSuite

__all__ = ["QueueSuite"]


class QueueSuite(DedupSuite, OutcomesSuite, WorkersSuite):
    """Subclass it and provide an ``async def storage(self)`` fixture yielding a fresh, connected storage.

    Example::

        class TestMyQueue(QueueSuite):
            @pytest.fixture
            async def storage(self):
                async with MyStorage(...) as storage:
                    yield storage
    """
