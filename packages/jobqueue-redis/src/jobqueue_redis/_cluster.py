"""The connections of one process to a Redis Cluster or Valkey cluster.

``redis+cluster://[user:password@]host:port[,host:port...]/`` names any seed
nodes; redis-py's ``RedisCluster`` discovers the rest. Three clients share
the work, as the three connections do on a single server:

- ``ClusterCommands``: every script and plain command, batched like
  ``CommandConnection`` but grouped per node, one pipelined write per node.
  A ``MOVED`` or ``ASK`` reply means the command did not run, so it is sent
  again to the new owner. A lost connection fails the calls in flight with
  ``StorageError`` (a script may have run: only the core knows whether a retry
  is safe) and makes the next batch read the slot map again. ``WAIT`` for
  replicas is sent on the same connection right after the writes it confirms.
- a ``RedisCluster`` for blocking commands, routed by key to the slot's owner;
- ``ShardedPubSubHub`` (``_sharded``): ``SSUBSCRIBE`` on the owner of each
  channel's slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jobqueue import StorageError
from jobqueue.storage import redact_url
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ._pubsub import stop_task

__all__ = [
    "CLUSTER_SCHEMES",
    "ClusterCommands",
    "ClusterUrl",
    "close_cluster_client",
    "is_cluster_url",
    "parse_cluster_url",
]

# storage URL scheme -> whether the connections use TLS
CLUSTER_SCHEMES = {
    "redis+cluster": False,
    "rediss+cluster": True,
    "valkey+cluster": False,
    "valkeys+cluster": True,
}

_MAX_BATCH = 512
_MAX_REDIRECTS = 5
# A node that no longer answers, or a cluster between two slot maps: read the map again.
_STALE = (RedisConnectionError, RedisTimeoutError, ClusterDownError, RedisClusterException, OSError)


async def close_cluster_client(client: RedisCluster) -> None:
    """Close every node connection of ``client``.

    ``RedisCluster.aclose`` does nothing while the client waits to read the slot
    map again (after a connection error), which would leave the other nodes'
    connections open; the node managers are closed here in every case.
    """
    await client.aclose()
    await client.nodes_manager.aclose()
    await client.nodes_manager.aclose("startup_nodes")


def is_cluster_url(url: str) -> bool:
    """True for ``redis+cluster://`` and the other cluster schemes."""
    return urlsplit(url).scheme.lower() in CLUSTER_SCHEMES


@dataclass(frozen=True)
class ClusterUrl:
    """A parsed cluster URL: the seed nodes and the connection options."""

    seeds: tuple[tuple[str, int], ...]
    options: dict[str, Any]

    def client(self, *, blocking: bool = False) -> RedisCluster:
        """A cluster client without hidden retries (see ``_connection.make_client``)."""
        options = dict(self.options)
        if blocking:
            options["socket_timeout"] = None  # blocking commands carry their own timeout
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self.seeds],
            protocol=2,
            retry=Retry(NoBackoff(), 0),
            **options,
        )

    def node_client(self, host: str, port: int) -> Redis:
        """A client of one node alone (a sharded pub/sub connection): no read timeout, no retries."""
        options = {**self.options, "socket_timeout": None}
        return Redis(host=host, port=port, protocol=2, retry=Retry(NoBackoff(), 0), **options)


def parse_cluster_url(url: str) -> ClusterUrl:
    """``redis+cluster://[user:pass@]h1:p1,h2:p2/?socket_timeout=...`` -> seeds and options.

    Raises:
        ValueError: no seed, a seed without a port, or a database other than 0.
    """
    parts = urlsplit(url)
    tls = CLUSTER_SCHEMES.get(parts.scheme.lower())
    if tls is None:
        raise ValueError(
            f"not a cluster url ({', '.join(s + '://' for s in CLUSTER_SCHEMES)}): {redact_url(url)!r}"
        )
    userinfo, _, hosts = parts.netloc.rpartition("@")
    seeds = []
    for seed in hosts.split(","):
        host, sep, port = seed.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"cluster url seeds must be host:port, got {seed!r} in {redact_url(url)!r}")
        seeds.append((host.strip("[]"), int(port)))
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError(f"a cluster has one database (0); url {redact_url(url)!r} names {parts.path!r}")
    # redis-py parses and converts the options of a single-server URL; reuse it on the first seed.
    single = urlunsplit(
        ("rediss" if tls else "redis", f"{userinfo}@{hosts.split(',')[0]}", "/0", parts.query, "")
    )
    options = {
        key: value
        for key, value in parse_url(single).items()  # type: ignore[no-untyped-call]  # redis-py: unannotated
        if key not in ("host", "port", "db", "connection_class") and value is not None
    }
    if tls:
        options["ssl"] = True
    return ClusterUrl(tuple(seeds), options)


@dataclass(eq=False)
class _Call:
    args: tuple[Any, ...]
    future: asyncio.Future[Any]
    replicas: int = 0  # > 0: the reply stands only once WAIT saw this many replicas take it
    wait_ms: int = 0  # how long WAIT may take
    node: ClusterNode | None = None  # an explicit target (keyless commands), never redirected
    asking: str | None = None  # the node an ASK redirection named
    redirects: int = 0


class ClusterCommands:
    """Batches every concurrent call, one pipelined write per node, like ``CommandConnection``."""

    sharded = True  # scripts publish with SPUBLISH

    def __init__(self, client: RedisCluster) -> None:
        self.client = client
        self._pending: list[_Call] = []
        self._inflight: list[_Call] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the task that sends batches."""
        self._task = asyncio.create_task(self._run(), name="jobqueue-redis-cluster-commands")

    async def close(self) -> None:
        """Stop sending, fail what is still pending and close every node connection."""
        await stop_task(self._task)
        self._task = None
        closed = StorageError("redis cluster connection closed")
        for call in [*self._inflight, *self._pending]:
            if not call.future.done():
                call.future.set_exception(closed)
        self._inflight, self._pending = [], []
        await close_cluster_client(self.client)

    async def call(self, *args: Any) -> Any:
        """Send one command (routed by its first key) with whatever else is pending."""
        return (await self.call_many([args]))[0]

    async def call_many(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send several commands in the same batch; raise the first error among them."""
        return list(await asyncio.gather(*(self._submit(_Call(args, self._future())) for args in commands)))

    async def call_confirmed(self, replicas: int, timeout_ms: int, *args: Any) -> Any:
        """Send one write, then ``WAIT replicas timeout_ms`` on the same connection.

        Raises:
            StorageError: fewer replicas confirmed the write in time (it may be
                lost at a failover, or it may have been kept: the caller cannot know).
        """
        return await self._submit(_Call(args, self._future(), replicas=replicas, wait_ms=timeout_ms))

    async def call_on_primaries(self, *args: Any) -> dict[str, Any]:
        """Send a keyless command to every master; its reply by node name (``host:port``)."""
        await self._initialize()
        nodes = self.client.get_primaries()
        replies = await asyncio.gather(*(self._submit(_Call(args, self._future(), node=n)) for n in nodes))
        return {node.name: reply for node, reply in zip(nodes, replies, strict=True)}

    async def scan(self, pattern: str) -> list[bytes]:
        """Every key matching ``pattern`` on every master (SCAN each to its end)."""
        await self._initialize()
        found: list[bytes] = []

        async def scan(node: ClusterNode) -> None:
            cursor = 0
            while True:
                call = _Call(("SCAN", cursor, "MATCH", pattern, "COUNT", 1000), self._future(), node=node)
                reply = await self._submit(call)
                cursor = int(reply[0])
                found.extend(reply[1])
                if cursor == 0:
                    return

        await asyncio.gather(*(scan(node) for node in self.client.get_primaries()))
        return found

    def _future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def _submit(self, call: _Call) -> Any:
        if self._task is None:
            raise StorageError("redis cluster connection is closed")
        self._pending.append(call)
        self._wake.set()
        return await call.future

    async def _initialize(self) -> None:
        try:
            await self.client.initialize()  # a no-op unless a failure asked for a new slot map
        except (RedisError, RedisClusterException, OSError) as exc:
            raise StorageError(f"redis cluster: cannot read the slot map: {exc}") from exc

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(0)  # let the other ready tasks add their calls to this batch
            self._wake.clear()
            while self._pending:
                batch = [call for call in self._pending[:_MAX_BATCH] if not call.future.done()]
                del self._pending[:_MAX_BATCH]
                if batch:
                    self._inflight = batch
                    await self._send(batch)
                    self._inflight = []

    async def _send(self, batch: list[_Call]) -> None:
        todo = batch
        while todo:
            try:
                await self._initialize()
                groups = self._group(todo)
            except Exception as exc:  # no owner known for a slot: read the slot map again next time
                _fail(todo, exc)
                await self.client.aclose()
                return
            outcomes: list[list[Any] | BaseException]
            if len(groups) == 1:  # the common case: no task to start, no extra loop turn
                try:
                    outcomes = [await self._send_to(*groups[0])]
                except Exception as exc:
                    outcomes = [exc]
            else:
                outcomes = await asyncio.gather(
                    *(self._send_to(node, calls) for node, calls in groups), return_exceptions=True
                )
            todo, stale = [], False
            for (_, calls), outcome in zip(groups, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    stale = stale or isinstance(outcome, _STALE)
                    _fail(calls, outcome)
                    continue
                for call, reply in zip(calls, outcome, strict=True):
                    if isinstance(reply, MovedError | AskError | TryAgainError) and call.node is None:
                        call.redirects += 1
                        if call.redirects > _MAX_REDIRECTS:
                            _fail([call], StorageError(f"redis cluster: too many redirections: {reply}"))
                            continue
                        if isinstance(reply, AskError):
                            call.asking = f"{reply.host}:{reply.port}"
                        else:
                            stale = stale or isinstance(reply, MovedError)
                        todo.append(call)  # it did not run: sending it again is safe
                    elif isinstance(reply, BaseException):
                        stale = stale or isinstance(reply, _STALE)
                        _fail([call], reply)
                    elif not call.future.done():
                        call.future.set_result(reply)
            if stale:
                await self.client.aclose()  # the next initialize() reads the slot map again

    def _group(self, calls: list[_Call]) -> list[tuple[ClusterNode, list[_Call]]]:
        groups: dict[str, tuple[ClusterNode, list[_Call]]] = {}
        for call in calls:
            node = call.node or self._route(call)
            groups.setdefault(node.name, (node, []))[1].append(call)
        return list(groups.values())

    def _route(self, call: _Call) -> ClusterNode:
        if call.asking is not None:
            node = self.client.get_node(node_name=call.asking)
            if node is not None:
                return node
        args = call.args
        # Scripts: EVALSHA sha numkeys key...; every command used here otherwise has its key first.
        key = args[3] if str(args[0]).upper() in ("EVAL", "EVALSHA") else args[1]
        node = self.client.get_node_from_key(key)
        if node is None:
            raise StorageError(f"redis cluster: no node owns the slot of {key!r}")
        return node

    async def _send_to(self, node: ClusterNode, calls: list[_Call]) -> list[Any]:
        commands: list[tuple[Any, ...]] = []
        for call in calls:
            if call.asking is not None:
                commands.append(("ASKING",))
            commands.append(call.args)
        replicas = max(call.replicas for call in calls)
        if replicas:
            # WAIT counts the replicas that acknowledged every write of this connection so far.
            commands.append(("WAIT", replicas, max(call.wait_ms for call in calls)))
        connection = node.acquire_connection()
        try:
            await connection.send_packed_command(connection.pack_commands(commands))
            replies = []
            for command in commands:
                try:
                    replies.append(await node.parse_response(connection, command[0]))
                except ResponseError as exc:  # MOVED, ASK, NOSCRIPT, script errors: this reply only
                    replies.append(exc)
        except BaseException:
            await asyncio.shield(connection.disconnect())  # replies may be left unread on it
            raise
        finally:
            node.release(connection)
        confirmed = int(replies.pop()) if replicas else 0
        out = []
        pending = iter(replies)
        for call in calls:
            if call.asking is not None:
                next(pending)  # the ASKING reply
                call.asking = None
            reply = next(pending)
            if call.replicas and confirmed < call.replicas and not isinstance(reply, BaseException):
                reply = StorageError(
                    f"redis cluster: {confirmed} of {call.replicas} replica(s) confirmed the write "
                    f"within {call.wait_ms} ms; a failover could lose it"
                )
            out.append(reply)
        return out


def _fail(calls: Sequence[_Call], exc: BaseException) -> None:
    for call in calls:
        if not call.future.done():
            call.future.set_exception(exc)
