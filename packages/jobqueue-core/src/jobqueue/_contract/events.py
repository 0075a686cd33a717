"""``EventBuffer``: the bounded queue between a storage's event source and one subscriber."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Generic, Self, TypeVar

__all__ = ["MAX_PENDING_EVENTS", "EventBuffer"]

T = TypeVar("T")

MAX_PENDING_EVENTS = 10_000
"""Events one subscriber may have pending; past that the oldest are dropped (and counted)."""

_log = logging.getLogger("jobqueue")


class EventBuffer(Generic[T]):
    """Events for one subscriber, as an async iterator, until ``close``.

    A slow reader never makes memory grow: past ``limit`` pending items the
    oldest are dropped, counted in ``dropped`` and logged (the first drop and
    every 1,000th). Events are best effort in the contract, and waiters re-read
    their jobs periodically, so a drop delays them, never strands them. Items
    put before ``close`` are still read; then the iteration ends.
    """

    def __init__(self, limit: int = MAX_PENDING_EVENTS, *, source: str = "storage") -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self.dropped = 0
        self._source = source
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        self._take: Callable[[T], bool] | None = None

    @property
    def closed(self) -> bool:
        """True once ``close`` was called."""
        return self._closed

    def intercept(self, take: Callable[[T], bool] | None) -> None:
        """Offer each item put from now on to ``take``, in the caller of ``put``, before buffering it.

        An item ``take`` returns True for is not buffered: a consumer that handles most items
        without awaiting saves a loop turn per item. ``take`` must not raise.
        """
        self._take = take

    def put(self, item: T) -> None:
        """Append an item (ignored once closed), dropping the oldest when full."""
        if self._closed or (self._take is not None and self._take(item)):
            return
        if len(self._items) >= self.limit:
            self._items.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:  # a slow reader must not flood the log
                _log.warning("%s subscriber is slow: %d events dropped so far", self._source, self.dropped)
        self._items.append(item)
        self._ready.set()

    def close(self) -> None:
        """End the iteration once the pending items are read."""
        self._closed = True
        self._ready.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()
