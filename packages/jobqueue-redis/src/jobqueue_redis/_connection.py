"""The connections of one process to one server: three at most, shared and ref-counted.

``ServerConnections`` holds, for one server URL and one event loop:

- ``commands``: one connection; concurrent calls from any task and any
  namespace are pipelined together (one round trip per batch);
- ``blocking``: one connection for BLMOVE, used by one waiter at a time
  (``blocking_lock``); other waiters listen for events instead;
- ``pubsub``: one subscriber connection shared by every subscription;
- ``listening``: the flags saying that this process listens (``_listening``).

Every storage (and namespace view) on the same URL in the same loop takes a
reference with ``acquire`` and gives it back with ``release``; the last
release closes the connections and stops the background tasks.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from jobqueue import StorageError
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ._cluster import ClusterCommands, close_cluster_client, is_cluster_url, parse_cluster_url
from ._errors import redis_errors
from ._listening import Listening
from ._pubsub import PubSubHub, stop_task
from ._scripts import scripts_for
from ._sharded import ShardedPubSubHub

__all__ = ["CommandConnection", "ServerConnections", "acquire", "release"]

_MAX_BATCH = 512


def make_client(url: str, *, blocking: bool = False) -> Redis:
    """A client with exactly one connection and no hidden retries.

    A retried script could run twice (an enqueue or a claim), so a
    connection error is reported to the caller instead; redis-py reconnects
    on the next call. RESP2 keeps replies (and pub/sub messages) in one shape.
    The blocking connection has no read timeout: BLMOVE carries its own.
    """
    pool = BlockingConnectionPool.from_url(
        url, max_connections=1, timeout=None, protocol=2, retry=Retry(NoBackoff(), 0)
    )
    if blocking:
        pool.connection_kwargs["socket_timeout"] = None
    return Redis(connection_pool=pool)


class CommandConnection:
    """One connection that pipelines every concurrent call into one round trip."""

    sharded = False  # a single server: scripts publish with PUBLISH

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._inflight: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task that sends batches."""
        self._task = asyncio.create_task(self._run(), name="jobqueue-redis-commands")

    async def close(self) -> None:
        """Stop sending, fail what is still pending and close the connection."""
        await stop_task(self._task)
        self._task = None
        closed = StorageError("redis connection closed")
        self._fail(self._inflight, closed)
        self._fail(self._pending, closed)
        self._inflight, self._pending = [], []
        await self._client.aclose()
        await self._client.connection_pool.disconnect()

    async def call(self, *args: Any) -> Any:
        """Send one command with whatever else is pending; return its reply or raise its error."""
        return (await self.call_many([args]))[0]

    async def call_many(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send several commands in the same round trip; raise the first error among them."""
        if self._task is None:
            raise StorageError("redis connection is closed")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        self._pending.extend(zip(commands, futures, strict=True))
        self._wake.set()
        return list(await asyncio.gather(*futures))

    async def scan(self, pattern: str) -> list[bytes]:
        """Every key matching ``pattern`` (SCAN to its end)."""
        found: list[bytes] = []
        cursor = 0
        while True:
            reply = await self.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            cursor = int(reply[0])
            found.extend(reply[1])
            if cursor == 0:
                return found

    async def call_confirmed(self, replicas: int, timeout_ms: int, *args: Any) -> Any:
        """Send one write, then ``WAIT replicas timeout_ms``; raise ``StorageError`` if unconfirmed.

        Both go on the one connection, in order, so WAIT covers the write.
        """
        reply, confirmed = await self.call_many([args, ("WAIT", replicas, timeout_ms)])
        if int(confirmed) < replicas:
            raise StorageError(
                f"redis: {confirmed} of {replicas} replica(s) confirmed the write within {timeout_ms} ms; "
                "a failover could lose it"
            )
        return reply

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # Every task readied in the caller's turn has added its call by now. More than one
            # call means a burst: one more loop turn lets the rest of it join this batch. A lone
            # call (a sequential caller) goes out at once.
            if len(self._pending) > 1:
                await asyncio.sleep(0)
            self._wake.clear()
            while self._pending:
                batch = [item for item in self._pending[:_MAX_BATCH] if not item[1].done()]
                del self._pending[:_MAX_BATCH]
                if batch:
                    self._inflight = batch
                    await self._send(batch)
                    self._inflight = []

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                try:
                    results = [await self._client.execute_command(*batch[0][0])]  # type: ignore[no-untyped-call]  # redis-py: unannotated
                except Exception as exc:
                    results = [exc]
            else:
                pipe = self._client.pipeline(transaction=False)
                for args, _ in batch:
                    pipe.execute_command(*args)
                results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            self._fail(batch, exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    @staticmethod
    def _fail(batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]], exc: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(exc)


class ServerConnections:
    """The command, blocking and pub/sub connections to one server (or cluster) in one event loop.

    On a cluster (``redis+cluster://``) each is per node: see ``_cluster``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.refs = 0
        self.commands: CommandConnection | ClusterCommands
        self.blocking: Redis | RedisCluster
        self.pubsub: PubSubHub | ShardedPubSubHub
        if is_cluster_url(url):
            cluster = parse_cluster_url(url)
            self.commands = ClusterCommands(cluster.client())
            self.blocking = cluster.client(blocking=True)
            self.pubsub = ShardedPubSubHub(cluster.client(), cluster.node_client)
        else:
            self.commands = CommandConnection(make_client(url))
            self.blocking = make_client(url, blocking=True)
            self.pubsub = PubSubHub(make_client(url))
        self.listening = Listening(self.commands)
        self.blocking_lock = asyncio.Lock()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def open(self) -> None:
        """Start the command pipeline and register every script (one round trip per node)."""
        self.commands.start()
        loads = [("SCRIPT", "LOAD", s.source) for s in scripts_for(self.commands).values()]
        with redis_errors("connect"):
            if isinstance(self.commands, ClusterCommands):
                await asyncio.gather(*(self.commands.call_on_primaries(*load) for load in loads))
                return
            info, *_ = await self.commands.call_many([("INFO", "cluster"), *loads])
        if info.get("cluster_enabled"):
            node = urlsplit(self.url).netloc.rpartition("@")[2]
            raise StorageError(
                f"redis {node} is a node of a cluster: use redis+cluster://{node}/ "
                "(or rediss+cluster://, valkey+cluster://; any node is enough)"
            )

    async def close(self) -> None:
        """Close every connection and stop the background tasks."""
        await self.listening.close()
        await self.pubsub.close()
        await self.commands.close()
        if isinstance(self.blocking, RedisCluster):
            await close_cluster_client(self.blocking)
        else:
            await self.blocking.aclose()
            await self.blocking.connection_pool.disconnect()


_REGISTRY: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, ServerConnections]] = (
    weakref.WeakKeyDictionary()
)


async def acquire(url: str) -> ServerConnections:
    """Take a reference on this loop's connections to ``url``, opening them on first use."""
    pools = _REGISTRY.setdefault(asyncio.get_running_loop(), {})
    conns = pools.get(url)
    if conns is None:
        conns = ServerConnections(url)
        pools[url] = conns
        try:
            await conns.open()
        except BaseException as exc:
            del pools[url]
            conns.opened.set_exception(StorageError(f"redis connect failed: {exc}"))
            conns.opened.exception()  # retrieved: concurrent acquirers raise their own copy
            await conns.close()
            raise
        conns.opened.set_result(None)
    else:
        await asyncio.shield(conns.opened)  # a concurrent first acquire may still be opening
    conns.refs += 1
    return conns


async def release(conns: ServerConnections) -> None:
    """Give back a reference; the last one closes the connections."""
    conns.refs -= 1
    if conns.refs > 0:
        return
    pools = _REGISTRY.get(asyncio.get_running_loop(), {})
    if pools.get(conns.url) is conns:
        del pools[conns.url]
    await conns.close()
