"""A subscription: tail the namespace's event log, woken by the directory watcher.

The tail is read on the event loop (see ``_feed``); opening it takes the
log's lock, in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from jobqueue import StorageError
from jobqueue.storage import Channel, StorageEvent, map_exceptions

from ._events import EventTail
from ._space import Space
from ._watch import DirWatcher

__all__ = ["FALLBACK_POLL_SECONDS", "subscription"]

FALLBACK_POLL_SECONDS = 2.0
"""A waiter re-checks at least this often, in case a file-system event was lost."""


@asynccontextmanager
async def subscription(
    space: Space, watcher: DirWatcher, channels: frozenset[Channel], connected: Callable[[], bool]
) -> AsyncIterator[AsyncIterator[StorageEvent]]:
    """Open the log at its end now; yield the events of ``channels`` appended from then on."""
    tail = EventTail(space.log)
    with map_exceptions({OSError: StorageError}, "file storage subscribe"):
        await asyncio.to_thread(tail.open)
    try:
        yield _feed(tail, watcher, space.layout.events, channels, connected)
    finally:
        await asyncio.to_thread(tail.close)


async def _feed(
    tail: EventTail,
    watcher: DirWatcher,
    events_dir: str,
    channels: frozenset[Channel],
    connected: Callable[[], bool],
) -> AsyncIterator[StorageEvent]:
    while connected():
        since = watcher.snapshot(events_dir)
        with map_exceptions({OSError: StorageError}, "file storage subscribe"):
            # On the loop, not in a worker thread: what was just appended is a few hundred bytes in
            # the page cache, read in microseconds, and the hand-off to a thread and back cost more
            # than that on the request/response path (a subscriber reads after every publish).
            events = tail.read()
        for event in events:
            for channel in event.kind.channels:
                if channel in channels:
                    yield event  # once per subscribed channel it was published on
        if not events:
            await watcher.wait((events_dir,), since, FALLBACK_POLL_SECONDS)
