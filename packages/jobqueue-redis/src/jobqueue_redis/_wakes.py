"""Wake-ups of a partitioned queue: one ``events`` subscription per namespace and process.

Blocked claims of a partitioned queue cannot block on one marker (the
partitions live in different slots), so they wait for the ``enqueued``,
``requeued`` and ``stalled`` events of every partition instead. Subscribing
for each call would cost a subscription and a second claim round every time;
one listener per namespace, started on the first blocked claim and stopped
with the connections, counts the wake-ups instead. A claim notes the current
``signal`` before it looks, so a job enqueued while it looks is never missed.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from jobqueue.storage import Channel, EventKind, StorageEvent

from ._pubsub import stop_task

__all__ = ["WAKE_KINDS", "Wakes", "wakes_of"]

WAKE_KINDS = frozenset({EventKind.ENQUEUED, EventKind.REQUEUED, EventKind.STALLED})
"""The events that mean a job may be ready."""

Subscribe = Callable[[Channel], AbstractAsyncContextManager[Any]]


class Wakes:
    """Which partition last said that a job may be ready, and a signal each time one does."""

    def __init__(self, partition: Callable[[str], int]) -> None:
        self._partition = partition
        self.signal = asyncio.Event()  # replaced after each wake-up: waiters keep the one they saw
        self.last: int | None = None  # the partition of the latest wake-up
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    @property
    def listening(self) -> bool:
        """True while the listener hears the events."""
        return (
            self._task is not None
            and not self._task.done()
            and self._ready is not None
            and self._ready.done()
            and self._ready.exception() is None
        )

    async def start(self, subscribe: Subscribe) -> None:
        """Listen (once; again after the listener ended) and return when events are heard."""
        if self._task is None or self._task.done():
            self._ready = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._listen(subscribe), name="jobqueue-redis-wakes")
        assert self._ready is not None
        await asyncio.shield(self._ready)

    async def stop(self) -> None:
        """Stop listening."""
        await stop_task(self._task)
        self._task = None

    async def _listen(self, subscribe: Subscribe) -> None:
        assert self._ready is not None
        try:
            async with subscribe(Channel.EVENTS) as events:
                self._ready.set_result(None)
                event: StorageEvent
                async for event in events:
                    if event.kind in WAKE_KINDS:
                        self.last = self._partition(event.job_id)
                        self.signal.set()
                        self.signal = asyncio.Event()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
                self._ready.exception()  # retrieved: start() raises it
            raise
        finally:
            self.signal.set()  # no more wake-ups: waiters fall back to claiming again


_REGISTRY: weakref.WeakKeyDictionary[object, dict[str, Wakes]] = weakref.WeakKeyDictionary()


def wakes_of(shared: object, namespace: str, partition: Callable[[str], int]) -> Wakes:
    """The listener of ``namespace`` on the connections ``shared`` (created on first use)."""
    per_namespace = _REGISTRY.setdefault(shared, {})
    if namespace not in per_namespace:
        per_namespace[namespace] = Wakes(partition)
    return per_namespace[namespace]


async def stop_all(shared: object) -> None:
    """Stop every listener on the connections ``shared`` (their last user disconnected)."""
    for wakes in _REGISTRY.pop(shared, {}).values():
        await wakes.stop()
