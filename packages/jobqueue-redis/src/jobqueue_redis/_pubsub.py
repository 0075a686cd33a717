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
from collections.abc import Sequence
from typing import Any

from jobqueue.storage import (
    MAX_PENDING_EVENTS,
    CorruptDataError,
    EventBuffer,
    StorageError,
    StorageEvent,
    decode_event,
)
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ._errors import redis_errors

__all__ = ["PubSubHub", "Routes", "Subscription", "stop_task"]

_log = logging.getLogger("jobqueue.redis")

_SUBSCRIBE_TIMEOUT = 10.0
_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0)


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


class Subscription(EventBuffer[StorageEvent]):
    """The events of some channels, as an async iterator, until closed (bounded: see ``EventBuffer``)."""

    def __init__(self, channels: Sequence[bytes], max_pending: int = MAX_PENDING_EVENTS) -> None:
        super().__init__(max_pending, source="redis")
        self.channels = tuple(channels)

    def deliver(self, event: StorageEvent) -> None:
        """Hand one event to the reader."""
        self.put(event)


class Routes:
    """What both hubs share: channel -> subscriptions, and the confirmations subscribers wait for.

    A hub subclass sends the (S)SUBSCRIBE in ``_send`` and calls ``_confirmed``
    and ``_deliver`` from its reader task. Every subscription sends its own
    (S)SUBSCRIBE, even on a channel already subscribed, and is routed to at
    the moment its confirmation is read: the reader handles a connection's
    messages in order, so an event published before the subscription was
    confirmed (still unread on the connection) is never handed to it.
    """

    _what = "subscribe"

    def __init__(self) -> None:
        self._routes: dict[bytes, set[Subscription]] = {}
        self._live: set[bytes] = set()  # confirmed on the current connection(s)
        self._waiters: dict[bytes, list[tuple[asyncio.Future[None], Subscription]]] = {}
        self._order = asyncio.Lock()  # waiters queue up in the order their commands are sent

    async def _send(self, channels: list[bytes]) -> None:
        raise NotImplementedError

    async def add(self, subscription: Subscription) -> None:
        """Route the subscription's channels to it from its confirmation on; return once confirmed."""
        loop = asyncio.get_running_loop()
        futures = []
        try:
            async with self._order:
                for channel in subscription.channels:
                    future: asyncio.Future[None] = loop.create_future()
                    self._waiters.setdefault(channel, []).append((future, subscription))
                    futures.append(future)
                with redis_errors(self._what):
                    await self._send(list(subscription.channels))
            with redis_errors(self._what):
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

    def _close_routes(self) -> None:
        for routes in self._routes.values():
            for subscription in routes:
                subscription.close()
        self._routes.clear()

    def _confirmed(self, channel: bytes) -> None:
        self._live.add(channel)
        waiters = self._waiters.get(channel)
        while waiters:
            future, subscription = waiters.pop(0)
            if not future.done():
                self._routes.setdefault(channel, set()).add(subscription)
                future.set_result(None)
                break

    def _deliver(self, channel: bytes, data: bytes) -> None:
        try:
            event = decode_event(data)
        except CorruptDataError:
            _log.warning("dropped an unreadable event on %r", channel, exc_info=True)
            return
        for subscription in list(self._routes.get(channel, ())):
            subscription.deliver(event)

    def _fail_waiters(self, exc: StorageError, channels: set[bytes] | None = None) -> None:
        for channel, waiters in list(self._waiters.items()):
            if channels is not None and channel not in channels:
                continue
            for future, _ in waiters:
                if not future.done():
                    future.set_exception(exc)
            del self._waiters[channel]


class PubSubHub(Routes):
    """Routes the messages of one pub/sub connection to subscriptions."""

    def __init__(self, client: Redis) -> None:
        super().__init__()
        self._client = client
        self._pubsub = client.pubsub()
        self._reader: asyncio.Task[None] | None = None
        # redis-py's PubSub takes its one pooled connection on first use; two first
        # uses at once would wait for each other forever.
        self._send_lock = asyncio.Lock()

    async def _send(self, channels: list[bytes]) -> None:
        async with self._send_lock:
            await self._pubsub.subscribe(*channels)
            if self._reader is None:
                self._reader = asyncio.create_task(self._read(), name="jobqueue-redis-pubsub")

    async def close(self) -> None:
        """End every subscription, stop the reader and close the connection."""
        self._close_routes()
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
            self._confirmed(channel)
        elif kind == "message":
            self._deliver(channel, message["data"])
