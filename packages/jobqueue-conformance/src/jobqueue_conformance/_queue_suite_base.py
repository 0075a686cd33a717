"""Fixtures shared by the queue suite: queues and reapers that stop themselves after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio
from jobqueue import LeaderElection, Queue, Reaper
from jobqueue.storage import Storage

__all__ = ["MakeQueue", "MakeReaper", "QueueSuiteBase", "Recorder", "fast_election"]

MakeQueue = Callable[..., Queue[Any, Any]]
MakeReaper = Callable[..., Reaper]

QUEUE_DEFAULTS: dict[str, Any] = {
    "block_timeout": 0.2,
    "visibility_timeout": 5.0,
    "retry_backoff": 0.01,
}


class Recorder:
    """Collects ``(event, args)`` pairs from ``queue.on``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, tuple[Any, ...]]] = []

    def watch(self, target: Queue[Any, Any] | Reaper, *names: str) -> None:
        """Record every ``names`` event of ``target``."""
        for name in names:
            # a name chosen at run time: each event's callback signature is checked where it is literal
            event: Any = name
            target.on(event, lambda *args, name=name: self.seen.append((name, args)))

    def names(self, job_id: str | None = None) -> list[str]:
        """Event names in order, optionally only those whose first argument is ``job_id``."""
        return [name for name, args in self.seen if job_id is None or (args and args[0] == job_id)]


class QueueSuiteBase:
    """Provides ``make_queue`` and ``make_reaper`` over the implementer's ``storage`` fixture."""

    @pytest_asyncio.fixture
    async def make_queue(self, storage: Storage) -> AsyncIterator[MakeQueue]:
        """Build queues on ``storage`` (short timeouts); each is stopped after the test."""
        created: list[Queue[Any, Any]] = []

        def make(**options: Any) -> Queue[Any, Any]:
            queue: Queue[Any, Any] = Queue(storage, **{**QUEUE_DEFAULTS, **options})
            created.append(queue)
            return queue

        yield make
        for queue in created:
            await queue.stop(timeout=0)

    @pytest_asyncio.fixture
    async def make_reaper(self, storage: Storage) -> AsyncIterator[MakeReaper]:
        """Build reapers on ``storage``; each is stopped after the test."""
        created: list[Reaper] = []

        def make(**options: Any) -> Reaper:
            options.setdefault("leader_election", None)
            reaper = Reaper(storage, **options)
            created.append(reaper)
            return reaper

        yield make
        for reaper in created:
            await reaper.stop()


def fast_election() -> LeaderElection:
    """A leader election quick enough for tests."""
    return LeaderElection(lock_ttl=0.6, renew_interval=0.2, retry_interval=0.1)
