"""Sharded pub/sub on a cluster: one ``SSUBSCRIBE`` connection per node that owns a channel.

The scripts publish with ``SPUBLISH``, so an event stays on the shard of its
queue instead of being broadcast to every node. ``ShardedPubSubHub`` has the
interface of ``PubSubHub``: a channel is subscribed on first use, on the
master that owns its slot, and stays subscribed. When that node's connection
drops (a crash, a failover) or the node unsubscribes the channel itself (its
slot moved away), the hub reads the slot map again and subscribes on the new
owner, retrying until it succeeds. Events published meanwhile are lost (the
contract's best effort; waiters re-check, workers wake on their timers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from jobqueue.storage import StorageError
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from ._cluster import close_cluster_client
from ._pubsub import Routes, stop_task

__all__ = ["ShardedPubSubHub"]

_log = logging.getLogger("jobqueue.redis")

_SUBSCRIBE_TIMEOUT = 10.0
_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.5, 1.0)


class _NodeReader:
    """One node's pub/sub connection and the task that reads it."""

    def __init__(self, name: str, client: Redis) -> None:
        self.name = name
        self.client = client
        self.pubsub: PubSub = client.pubsub()
        self.channels: set[bytes] = set()
        self.task: asyncio.Task[None] | None = None  # started after the first SSUBSCRIBE

    async def close(self) -> None:
        await stop_task(self.task)
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py: unannotated
        await self.client.aclose()


class ShardedPubSubHub(Routes):
    """Routes the messages of the nodes' sharded pub/sub connections to subscriptions."""

    _what = "ssubscribe"

    def __init__(self, topology: RedisCluster, node_client: Callable[[str, int], Redis]) -> None:
        super().__init__()
        self._topology = topology  # a cluster client used only to find each channel's owner
        self._node_client = node_client  # host, port -> a client of that node alone
        self._readers: dict[str, _NodeReader] = {}
        self._orphans: set[bytes] = set()  # subscribed once, owner lost: to subscribe again
        self._repair: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one (re)subscription round at a time
        self._closing: set[asyncio.Task[None]] = set()  # readers of lost nodes being closed

    async def _send(self, channels: list[bytes]) -> None:
        await self._subscribe(channels, refresh=False)

    async def close(self) -> None:
        """End every subscription, stop the readers and close their connections."""
        self._close_routes()
        await stop_task(self._repair)
        self._repair = None
        for reader in list(self._readers.values()):
            await reader.close()
        self._readers.clear()
        if self._closing:
            await asyncio.wait(self._closing)
        self._fail_waiters(StorageError("redis pub/sub connection closed"))
        await close_cluster_client(self._topology)

    async def _subscribe(self, channels: list[bytes], *, refresh: bool) -> None:
        """SSUBSCRIBE each channel on the node that owns its slot (reading the slot map again first)."""
        async with self._lock:
            if refresh:
                await self._topology.aclose()  # the next initialize() reads the slot map again
            await self._topology.initialize()
            # SSUBSCRIBE takes channels of one slot only: one command per slot.
            by_slot: dict[tuple[str, int], list[bytes]] = {}
            for channel in channels:
                node = self._topology.get_node_from_key(channel.decode())
                if node is None:
                    raise StorageError(f"redis cluster: no node owns the slot of channel {channel!r}")
                if node.name not in self._readers:
                    self._readers[node.name] = _NodeReader(
                        node.name, self._node_client(node.host, int(node.port))
                    )
                by_slot.setdefault((node.name, self._topology.keyslot(channel)), []).append(channel)
            for (name, _), names in by_slot.items():
                reader = self._readers[name]
                try:
                    await reader.pubsub.ssubscribe(*names)
                except BaseException:
                    if reader.task is None:  # a new node that does not answer: forget it
                        self._readers.pop(name, None)
                        await _close_quietly(reader)
                    raise
                reader.channels.update(names)
                self._orphans.difference_update(names)
                if reader.task is None:
                    reader.task = asyncio.create_task(
                        self.read(reader), name=f"jobqueue-redis-spubsub-{name}"
                    )

    async def read(self, reader: _NodeReader) -> None:
        """The reader task of one node: dispatch its messages until its connection fails."""
        while True:
            try:
                message = await reader.pubsub.get_message(timeout=None)
            except (RedisError, OSError) as exc:
                _log.info("sharded pub/sub on %s lost (%s); subscribing on the new owners", reader.name, exc)
                self._orphan(reader.channels, StorageError(f"redis pub/sub: {type(exc).__name__}: {exc}"))
                self._readers.pop(reader.name, None)
                closing = asyncio.create_task(_close_quietly(reader))  # apart: it waits for this task
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
                return
            if message is not None:
                self._dispatch(reader, message)

    def _dispatch(self, reader: _NodeReader, message: dict[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "ssubscribe":
            self._confirmed(channel)
        elif kind == "sunsubscribe":
            # The node dropped the channel itself: its slot moved to another node.
            reader.channels.discard(channel)
            self._orphan({channel}, None)
        elif kind == "smessage":
            self._deliver(channel, message["data"])

    def _orphan(self, channels: set[bytes], exc: StorageError | None) -> None:
        self._live.difference_update(channels)
        self._orphans.update(channels)
        if exc is not None:
            self._fail_waiters(exc, channels)
        if self._repair is None or self._repair.done():
            self._repair = asyncio.create_task(self._resubscribe(), name="jobqueue-redis-spubsub-repair")

    async def _resubscribe(self) -> None:
        failures = 0
        while self._orphans:
            await asyncio.sleep(_RETRY_DELAYS[min(failures, len(_RETRY_DELAYS) - 1)])
            try:
                await self._subscribe(sorted(self._orphans), refresh=True)
            except (RedisError, OSError, StorageError) as exc:
                failures += 1
                _log.debug("sharded pub/sub: subscribing again failed (%s); retrying", exc)


async def _close_quietly(reader: _NodeReader) -> None:
    with contextlib.suppress(RedisError, OSError):
        await reader.close()
