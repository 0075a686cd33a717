"""One pub/sub connection per process and server, shared by every subscription.

A channel is subscribed on first use and stays subscribed until the
connections close (a handful of channels per namespace), so a new
subscription on a live channel costs nothing. One reader task receives every
message and hands the decoded event to the subscriptions of its channel.
After a dropped connection the reader reconnects; redis-py subscribes the
channels again on connect, and events published meanwhile are lost (the
contract's best effort).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

from jobqueue.storage import CorruptDataError, StorageError, StorageEvent, decode_event
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ._errors import redis_errors

__all__ = ["PubSubHub", "Subscription", "stop_task"]

_log = logging.getLogger("jobqueue.redis")

_SUBSCRIBE_TIMEOUT = 10.0
_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0)
MAX_PENDING_EVENTS = 10_000
"""Events one subscription holds for a reader that falls behind; the oldest go first."""


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait for it to end.

    Cancelled again until it ends: redis-py can drop a cancellation that
    arrives together with a reply.
    """
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if task is not None and not task.cancelled() and task.exception() is not None:
        _log.error("background task %s failed", task.get_name(), exc_info=task.exception())


class Subscription:
    """The events of some channels, as an async iterator, until closed.

    At most ``max_pending`` events wait for a slow reader: past that the
    oldest are dropped, counted in ``dropped`` and logged (events are best
    effort; waiters re-read their jobs periodically, so none hangs).
    """

    def __init__(self, channels: Sequence[bytes], max_pending: int = MAX_PENDING_EVENTS) -> None:
        self.channels = tuple(channels)
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: deque[StorageEvent] = deque()
        self._ready = asyncio.Event()
        self._closed = False

    def deliver(self, event: StorageEvent) -> None:
        if self._closed:
            return
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:  # a slow reader must not flood the log
                _log.warning("redis subscriber is slow: %d events dropped so far", self.dropped)
        self._pending.append(event)
        self._ready.set()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._ready.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> StorageEvent:
        while not self._pending:
            if self._closed:  # events delivered before the close are read first
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._pending.popleft()


class PubSubHub:
    """Routes the messages of one pub/sub connection to subscriptions."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._pubsub = client.pubsub()
        self._routes: dict[bytes, set[Subscription]] = {}
        self._live: set[bytes] = set()  # confirmed on the current connection
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        self._reader: asyncio.Task[None] | None = None
        # redis-py's PubSub takes its one pooled connection on first use; two first
        # uses at once would wait for each other forever.
        self._send_lock = asyncio.Lock()

    async def add(self, subscription: Subscription) -> None:
        """Route the subscription's channels to it; return once the server confirmed them."""
        for channel in subscription.channels:
            self._routes.setdefault(channel, set()).add(subscription)
        missing = [channel for channel in subscription.channels if channel not in self._live]
        if not missing:
            return
        loop = asyncio.get_running_loop()
        futures = []
        for channel in missing:
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(channel, []).append(future)
            futures.append(future)
        try:
            with redis_errors("subscribe"):
                async with self._send_lock:
                    await self._pubsub.subscribe(*missing)
                    if self._reader is None:
                        self._reader = asyncio.create_task(self._read(), name="jobqueue-redis-pubsub")
                async with asyncio.timeout(_SUBSCRIBE_TIMEOUT):
                    await asyncio.gather(*futures)
        except BaseException:
            self.remove(subscription)
            for future in futures:
                future.cancel()
            raise

    def remove(self, subscription: Subscription) -> None:
        """Stop routing to the subscription and end its iteration."""
        subscription.close()
        for channel in subscription.channels:
            routes = self._routes.get(channel)
            if routes is not None:
                routes.discard(subscription)

    async def close(self) -> None:
        """End every subscription, stop the reader and close the connection."""
        for routes in self._routes.values():
            for subscription in routes:
                subscription.close()
        self._routes.clear()
        await stop_task(self._reader)
        self._reader = None
        self._fail_waiters(StorageError("redis pub/sub connection closed"))
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py: unannotated
        await self._client.aclose()
        await self._client.connection_pool.disconnect()

    async def _read(self) -> None:
        failures = 0
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except (RedisError, OSError) as exc:
                self._live.clear()
                self._fail_waiters(StorageError(f"redis pub/sub: {type(exc).__name__}: {exc}"))
                await asyncio.sleep(_RETRY_DELAYS[min(failures, len(_RETRY_DELAYS) - 1)])
                failures += 1
                continue
            failures = 0
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "subscribe":
            self._live.add(channel)
            waiters = self._waiters.get(channel)
            while waiters:
                future = waiters.pop(0)
                if not future.done():
                    future.set_result(None)
                    break
        elif kind == "message":
            try:
                event = decode_event(message["data"])
            except CorruptDataError:
                _log.warning("dropped an unreadable event on %r", channel, exc_info=True)
                return
            for subscription in list(self._routes.get(channel, ())):
                subscription.deliver(event)

    def _fail_waiters(self, exc: StorageError) -> None:
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_exception(exc)
        self._waiters.clear()
