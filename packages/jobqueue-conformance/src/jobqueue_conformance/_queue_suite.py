"""``QueueSuite``: the behaviour of ``Queue`` and ``Reaper`` over any storage."""

from __future__ import annotations

from typing import Any

import pytest

from ._plugin import conformance_suite
from ._queue_suite_dedup import DedupSuite
from ._queue_suite_options import OptionsSuite
from ._queue_suite_outcomes import OutcomesSuite
from ._queue_suite_workers import WorkersSuite

__all__ = ["QueueSuite"]


@conformance_suite
class QueueSuite(DedupSuite, OptionsSuite, OutcomesSuite, WorkersSuite):
    """Subclass it and provide an ``async def storage(self)`` fixture yielding a fresh, connected storage.

    Example::

        class TestMyQueue(QueueSuite):
            @pytest.fixture
            async def storage(self):
                async with MyStorage(...) as storage:
                    yield storage
    """

    @pytest.fixture
    def storage(self) -> Any:  # Any: subclasses override it with an async generator of their storage
        """Override: yield a fresh, connected storage (the default namespace of an empty store)."""
        pytest.fail(
            f"{type(self).__name__} must define an async `storage` fixture yielding a connected storage"
        )
