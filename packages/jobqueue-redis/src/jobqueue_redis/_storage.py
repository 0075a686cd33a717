"""``RedisStorage``: the storage contract v2 on Redis >= 7 and Valkey >= 8.

Every change is one Lua script (see ``lua/``) that mirrors a function of
``jobqueue.storage.rules``. The consumer path is one script to claim a batch
(``claim.lua``) and one to finish a batch (``finish.lua``); concurrent calls
share one pipelined round trip. Only when nothing is ready does ``dequeue``
block: ``BZPOPMIN`` on the namespace's wake marker (a sorted set that every
enqueue, release, retry and recovery adds to), then the claim script again.
The marker only says "look": a job never leaves the ready set until a claim
script takes it, so a process killed between the wake-up and the claim loses
nothing (the job stays ready for the next dequeue).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Self, cast

import msgpack
from jobqueue import JobState, StorageError
from jobqueue.storage import (
    DEFAULT_NAMESPACE,
    Channel,
    ControlChannel,
    EnqueueOutcome,
    Finish,
    JobRecord,
    LeaderLock,
    Monitoring,
    NewJob,
    Recovery,
    Revoked,
    Stalled,
    Storage,
    StorageEvent,
    TtlOutcome,
)

from ._admin import RedisAdminMixin
from ._claiming import RedisClaimMixin
from ._connection import ServerConnections, acquire, release
from ._errors import redis_errors
from ._keys import Keys, validate_name
from ._options import (
    DEFAULT_REPLICA_TIMEOUT,
    check_min_replicas,
    check_partitions,
    check_replica_timeout,
    first_of,
    partition_count,
    split_url,
)
from ._pubsub import Subscription
from ._records import record_from_packed, text
from ._scripts import run_script, run_script_confirmed

__all__ = ["RedisStorage"]

# Scripts whose reply tells a caller that a job's state is stored (min_replicas waits for them).
_ACKNOWLEDGING = frozenset({"enqueue", "finish", "cancel", "retry_failed", "update_ttl"})
_CHUNK = 1000  # ids per script call where a caller may pass more (Lua's unpack has a limit)
_ACCEPTED = EnqueueOutcome(accepted=True)  # frozen: one for every accepted job


class _Shared:
    """What every namespace view of one storage shares: the connections and their count."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.refs = 0
        self.conns: ServerConnections | None = None
        self.lock = asyncio.Lock()


class RedisStorage(RedisAdminMixin, RedisClaimMixin, Storage, Monitoring, LeaderLock, ControlChannel):
    """Jobs in Redis or Valkey, one namespace per instance.

    Args:
        url: the server, ``redis://[user:password@]host:port/db`` or
            ``rediss://`` for TLS (``valkey://``/``valkeys://`` are accepted
            too), or a cluster, ``redis+cluster://[user:password@]host:port[,host:port...]/``
            (``rediss+cluster://``, ``valkey+cluster://``; any one seed node
            is enough); redis-py options such as ``socket_timeout`` ride in
            the query, and so can the options below (``?prefix=jq&partitions=4``).
        prefix: the first part of every key (``jq:{default}:ready``); the
            URL's ``?prefix=`` when not given, else ``"jq"``.
        name: the namespace (a queue); ``namespace()`` returns views on others.
        partitions: spread each namespace over this many hash slots (a hot
            queue on a cluster), a job going to the partition of a hash of
            its id; FIFO then holds per partition only. Default 1.
        min_replicas: after each write that acknowledges a job (enqueue,
            finish, cancel, retry, TTL update), wait until this many replicas
            have it (``WAIT``); if they do not within ``replica_timeout``,
            the call raises ``StorageError``. Default 0 (do not wait).
        replica_timeout: seconds a write may wait for its replicas. Default 2.

    Raises:
        TypeError, ValueError: a bad URL, prefix, name or option (braces are not
            allowed in prefix and name: they delimit the hash tag).
    """

    def __new__(cls, url: str = "redis://127.0.0.1:6379/0", **options: Any) -> Self:
        # A partitioned storage is a subclass: every primitive spreads over the partitions.
        if cls is RedisStorage and partition_count(url, options.get("partitions")) > 1:
            from ._partitions import PartitionedRedisStorage  # it subclasses this class

            return cast(Self, object.__new__(PartitionedRedisStorage))
        return object.__new__(cls)

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str | None = None,
        name: str = DEFAULT_NAMESPACE,
        partitions: int | None = None,
        min_replicas: int | None = None,
        replica_timeout: float | None = None,
    ) -> None:
        options = split_url(url)
        prefix = validate_name(prefix if prefix is not None else options.prefix or "jq", "prefix")
        self._keys = Keys(prefix, validate_name(name, "namespace name"))
        self._shared = _Shared(options.server_url)
        self._partitions = check_partitions(first_of(partitions, options.partitions, 1))
        self._min_replicas = check_min_replicas(first_of(min_replicas, options.min_replicas, 0))
        self._replica_timeout_ms = check_replica_timeout(
            first_of(replica_timeout, options.replica_timeout, DEFAULT_REPLICA_TIMEOUT)
        )
        # per worker whose last claim emptied `ready`: when, and the ms to the next due job then
        self._emptied: dict[str, tuple[float, int | None]] = {}

    @classmethod
    def from_url(cls, url: str) -> RedisStorage:
        """Build a storage from a ``redis://``, ``rediss://``, ``valkey://``, ``valkeys://`` or cluster URL."""
        return cls(url)

    def __repr__(self) -> str:
        return f"RedisStorage(prefix={self._keys.prefix!r}, namespace={self._keys.namespace!r})"

    @property
    def keys(self) -> Keys:
        """The key names of this namespace (for tools and tests)."""
        return self._keys

    # ---------------------------------------------------------------- lifecycle

    @property
    def name(self) -> str:
        """The namespace this instance is bound to."""
        return self._keys.namespace

    def _view(self, name: str) -> Self:
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)  # the same connections and options
        view._keys = Keys(self._keys.prefix, validate_name(name, "namespace name"))
        view._emptied = {}  # per namespace
        return view

    async def connect(self) -> None:
        """Open the process's connections to the server (shared, ref-counted)."""
        shared = self._shared
        async with shared.lock:
            if shared.refs == 0:
                shared.conns = await acquire(shared.url)
            shared.refs += 1

    async def disconnect(self) -> None:
        """Release one ``connect``; the last release gives the connections back."""
        shared = self._shared
        async with shared.lock:
            if shared.refs <= 0:
                return
            shared.refs -= 1
            if shared.refs == 0 and shared.conns is not None:
                conns, shared.conns = shared.conns, None
                await release(conns)

    def _conns(self) -> ServerConnections:
        conns = self._shared.conns
        if conns is None:
            raise StorageError(f"{self!r} is not connected; call connect() or use 'async with'")
        return conns

    async def _run(self, script: str, args: Sequence[Any] = (), keys: Sequence[str] = ()) -> Any:
        """Run ``script`` with the fixed keys plus ``keys``, and the channels plus ``args``.

        With ``min_replicas``, a script that acknowledges a job waits for the replicas.
        """
        conns = self._conns()
        all_keys, all_args = [*self._keys.fixed_all(), *keys], [*self._keys.channels(), *args]
        with redis_errors(script):
            if self._min_replicas and script in _ACKNOWLEDGING:
                return await run_script_confirmed(
                    conns.commands, script, all_keys, all_args, self._min_replicas, self._replica_timeout_ms
                )
            return await run_script(conns.commands, script, all_keys, all_args)

    async def _command(self, *args: Any) -> Any:
        """Run one plain command (reads of an index, for the two-step monitoring calls)."""
        conns = self._conns()
        with redis_errors(str(args[0])):
            return await conns.commands.call(*args)

    async def _scan(self, pattern: str) -> list[bytes]:
        """Every key matching ``pattern``: SCAN on the server, or on every master of a cluster."""
        with redis_errors("SCAN"):
            return await self._conns().commands.scan(pattern)

    # -------------------------------------------------------------------- queue

    async def _enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        flat: list[Any] = []
        for job in jobs:
            flat += (job.id, job.message, job.delay_ms, job.priority)
        # one argument for the batch: redis-py packs it once instead of four values per job.
        # Lua's cmsgpack knows no bin type, so bytes go as raw strings (Lua strings are bytes).
        batch = msgpack.packb(flat, use_bin_type=False)
        reply = await self._run("enqueue", [batch], self._keys.jobs(job.id for job in jobs))
        return [
            _ACCEPTED
            if answer == 1
            else EnqueueOutcome(accepted=False, existing=record_from_packed(job.id, answer))
            for job, answer in zip(jobs, reply, strict=True)
        ]

    async def _finish(self, worker_id: str, outcomes: Sequence[Finish]) -> list[bool]:
        args: list[Any] = [worker_id]
        for outcome in outcomes:
            args += [outcome.job_id, outcome.kind.value, outcome.data or b"", outcome.ms]
        reply = await self._run("finish", args, self._keys.jobs(o.job_id for o in outcomes))
        return [bool(stored) for stored in reply]

    async def _heartbeat(
        self,
        worker_id: str,
        ttl_ms: int | None,
        job_ids: Sequence[str],
        lease_ms: int,
        info: bytes,
        *,
        announce: bool = True,
    ) -> dict[str, Revoked]:
        # announce=False: a partition other than the first registers without publishing (joined once).
        revoked: dict[str, Revoked] = {}
        chunks = [job_ids[i : i + _CHUNK] for i in range(0, len(job_ids), _CHUNK)] or [[]]
        flag = "1" if announce else ""
        for chunk in chunks:
            ttl = "" if ttl_ms is None else ttl_ms
            reply = await self._run("heartbeat", [worker_id, ttl, lease_ms, flag, info, *chunk])
            revoked.update((text(reply[i]), Revoked(text(reply[i + 1]))) for i in range(0, len(reply), 2))
            ttl_ms = None  # registered once
        return revoked

    async def _unregister_worker(self, worker_id: str, *, announce: bool = True) -> None:
        self._emptied.pop(worker_id, None)
        await self._run("unregister_worker", [worker_id, "1" if announce else ""])

    async def _set_progress(self, job_id: str, worker_id: str, data: bytes) -> bool:
        return bool(await self._run("set_progress", [job_id, worker_id, data]))

    async def _cancel(self, job_id: str, *, abort: bool) -> JobState | None:
        reply = await self._run("cancel", [job_id, "1" if abort else "0"], [self._keys.job(job_id)])
        return None if reply is None else JobState(text(reply))

    async def _recover_stalled(self) -> Recovery:
        reply = await self._run("recover_stalled")
        stalled = [Stalled(text(reply[i]), text(reply[i + 1])) for i in range(1, len(reply), 2)]
        next_expiry = int(reply[0])
        return Recovery(stalled, None if next_expiry < 0 else next_expiry)

    # ---------------------------------------------------------------- job state

    async def _get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        records: list[JobRecord | None] = []
        for start in range(0, len(job_ids), _CHUNK):
            chunk = job_ids[start : start + _CHUNK]
            reply = await self._run("get_many", chunk, self._keys.jobs(chunk))
            now, live, done = int(reply[0]), reply[1 : len(chunk) + 1], reply[len(chunk) + 1 :]
            for job_id, packed_live, packed_done in zip(chunk, live, done, strict=True):
                record = record_from_packed(job_id, packed_live) or record_from_packed(job_id, packed_done)
                if record is not None and record.expires_at is not None and record.expires_at <= now:
                    record = None  # rules.is_live: the key outlives its expiry by up to a millisecond
                records.append(record)
        return records

    async def _update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        reply = await self._run("update_ttl", [job_id, ttl_ms], [self._keys.job(job_id)])
        return cast(TtlOutcome, text(reply))

    # ------------------------------------------------------------ notifications

    def _subscribe(
        self, channels: frozenset[Channel]
    ) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        return self._subscription([self._keys], channels)

    @asynccontextmanager
    async def _subscription(
        self, parts: Sequence[Keys], channels: frozenset[Channel]
    ) -> AsyncIterator[AsyncIterator[StorageEvent]]:
        """Subscribe to ``channels`` of the namespaces ``parts``; flag them heard before yielding."""
        order = [
            channel for channel in (Channel.EVENTS, Channel.DONE, Channel.CONTROL) if channel in channels
        ]
        conns = self._conns()
        subscription = Subscription([keys.channel(channel).encode() for keys in parts for channel in order])
        await conns.pubsub.add(subscription)
        try:
            with redis_errors("subscribe"):
                await conns.listening.hold(parts, order)
        except BaseException:
            conns.pubsub.remove(subscription)
            raise
        try:
            yield subscription
        finally:
            conns.listening.release(parts, order)
            conns.pubsub.remove(subscription)
