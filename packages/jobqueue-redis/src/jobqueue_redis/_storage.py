"""``RedisStorage``: the storage contract on Redis >= 7 and Valkey >= 8.

Every multi-step change is one Lua script (see ``lua/``). The consumer path
is one script to claim a batch (``dequeue.lua``) and one to finish each job
(``complete``/``fail``/``retry``); concurrent calls share one pipelined
round trip. Only when the queue is empty does ``dequeue`` block, with
BLMOVE from the queue into the worker's landing list followed by
``claim_landed.lua``. A process that dies between the two leaves the id in
the landing list; the claim script recorded a deadline for it (in
``landings``) and ``recover_stalled`` puts it back at the head of the queue
once that deadline passes, so no job is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jobqueue import (
    DEFAULT_NAMESPACE,
    INLINE_RESULT_LIMIT,
    Channel,
    Claim,
    EnqueueOutcome,
    EventKind,
    JobState,
    LeaderLock,
    Stalled,
    Storage,
    StorageError,
    StorageEvent,
    parse_query,
    validate_job_id,
)
from jobqueue.storage import redact_url

from ._admin import RedisAdminMixin
from ._connection import ServerConnections, acquire, release
from ._errors import redis_errors
from ._keys import Keys, validate_name
from ._pubsub import Subscription
from ._records import claims_from_reply, record_from_fields, text
from ._scripts import run_script

__all__ = ["RedisStorage"]

_SCHEMES = {"redis": "redis", "rediss": "rediss", "valkey": "redis", "valkeys": "rediss"}
_URL_OPTIONS = {
    "prefix",
    "db",
    "username",
    "password",
    "client_name",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "health_check_interval",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
    "ssl_min_version",
}
_WAKE_KINDS = frozenset({EventKind.ENQUEUED, EventKind.REQUEUED, EventKind.STALLED})


def _split_url(url: str) -> tuple[str, str | None]:
    """A storage URL -> the redis-py URL (``redis://``/``rediss://``) and the ``prefix`` option."""
    if not isinstance(url, str):
        raise TypeError(f"storage url must be a str, not {type(url).__name__}")
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"not a redis url (redis://, rediss://, valkey://, valkeys://): {redact_url(url)!r}")
    params = parse_query(url, _URL_OPTIONS)
    prefix = params.pop("prefix", None)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "prefix"])
    return urlunsplit((scheme, parts.netloc, parts.path, query, "")), prefix


def _check_ms(value: object, name: str, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int (milliseconds), not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


class _Shared:
    """What every namespace view of one storage shares: the connections and their count."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.refs = 0
        self.conns: ServerConnections | None = None
        self.lock = asyncio.Lock()


class RedisStorage(RedisAdminMixin, Storage, LeaderLock):
    """Jobs in Redis or Valkey, one namespace per instance.

    Args:
        url: the server, ``redis://[user:password@]host:port/db`` or
            ``rediss://`` for TLS (``valkey://``/``valkeys://`` are accepted
            too); redis-py options such as ``socket_timeout`` ride in the query.
        prefix: the first part of every key (``jq:{default}:queue``); the
            URL's ``?prefix=`` when not given, else ``"jq"``.
        name: the namespace (a queue); ``namespace()`` returns views on others.

    Raises:
        TypeError, ValueError: a bad URL, prefix or name (braces are not allowed
            in prefix and name: they delimit the hash tag).
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str | None = None,
        name: str = DEFAULT_NAMESPACE,
    ) -> None:
        server_url, url_prefix = _split_url(url)
        prefix = validate_name(prefix if prefix is not None else url_prefix or "jq", "prefix")
        self._keys = Keys(prefix, validate_name(name, "namespace name"))
        self._shared = _Shared(server_url)

    @classmethod
    def from_url(cls, url: str) -> RedisStorage:
        """Build a storage from ``redis://``, ``rediss://``, ``valkey://`` or ``valkeys://`` (``?prefix=``)."""
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

    def namespace(self, name: str) -> Self:
        """Return a view on namespace ``name`` sharing this storage's connections."""
        view = object.__new__(type(self))
        view._keys = Keys(self._keys.prefix, validate_name(name, "namespace name"))
        view._shared = self._shared
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

    async def _run(self, script: str, *args: Any) -> Any:
        conns = self._conns()
        with redis_errors(script):
            return await run_script(conns.commands, script, self._keys.base, *args)

    async def _scan(self, cursor: int, pattern: str) -> tuple[int, list[bytes]]:
        reply = await self._conns().commands.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        return int(reply[0]), list(reply[1])

    # -------------------------------------------------------------------- queue

    async def enqueue(self, job_id: str, message: bytes, *, delay_ms: int = 0) -> EnqueueOutcome:
        """Store a new job unless one with this id exists, atomically."""
        validate_job_id(job_id)
        if not isinstance(message, bytes):
            raise TypeError(f"message must be bytes, not {type(message).__name__}")
        reply = await self._run("enqueue", job_id, message, _check_ms(delay_ms, "delay_ms"))
        if isinstance(reply, list):
            return EnqueueOutcome(accepted=False, existing=record_from_fields(job_id, reply))
        return EnqueueOutcome(accepted=True)

    async def dequeue(self, worker_id: str, *, lease_ms: int, timeout_ms: int, limit: int = 1) -> list[Claim]:
        """Claim up to ``limit`` ready jobs, waiting up to ``timeout_ms`` for one."""
        _check_ms(lease_ms, "lease_ms", 1)
        _check_ms(timeout_ms, "timeout_ms")
        _check_ms(limit, "limit", 1)
        conns = self._conns()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        blocking = timeout_ms > 0 and not conns.blocking_lock.locked()
        landing_ms = timeout_ms + lease_ms if blocking else 0
        claims, next_due = await self._claim("dequeue", worker_id, lease_ms, limit, landing_ms)
        if claims or timeout_ms == 0:
            return claims
        if conns.blocking_lock.locked():
            return await self._wait_for_events(worker_id, lease_ms, limit, deadline)
        async with conns.blocking_lock:
            return await self._wait_blocking(conns, worker_id, lease_ms, limit, deadline, next_due)

    async def _claim(
        self, script: str, worker_id: str, lease_ms: int, limit: int, landing_ms: int
    ) -> tuple[list[Claim], int | None]:
        reply = await self._run(script, worker_id, lease_ms, limit, landing_ms)
        return claims_from_reply(reply)

    async def _wait_blocking(
        self,
        conns: ServerConnections,
        worker_id: str,
        lease_ms: int,
        limit: int,
        deadline: float,
        next_due: int | None,
    ) -> list[Claim]:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        queue, landing = self._keys.fixed("Q_READY"), self._keys.landing(worker_id)
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            if next_due is not None and next_due / 1000 < remaining:
                # A server times blocked commands out on its cron (100 ms at the default hz),
                # too coarse for a job due at a given ms: wait on events with a local timer.
                due = min(deadline, loop.time() + (next_due + 1) / 1000)
                claims = await self._wait_for_events(worker_id, lease_ms, limit, due)
                if claims:
                    return claims
                claims, next_due = await self._claim("dequeue", worker_id, lease_ms, limit, 0)
                if claims:
                    return claims
                continue
            with redis_errors("dequeue (BLMOVE)"):
                landed = await conns.blocking.execute_command(  # type: ignore[no-untyped-call]  # redis-py
                    "BLMOVE", queue, landing, "LEFT", "RIGHT", f"{max(remaining, 0.001):.3f}"
                )
            if task is not None and task.cancelling() > cancelling:
                # redis-py can return a reply that arrived together with a cancellation and
                # drop the cancellation; honour it (an id that landed is recovered by the reaper).
                raise asyncio.CancelledError
            landing_ms = max(int((deadline - loop.time()) * 1000), 0) + lease_ms
            script = "claim_landed" if landed is not None else "dequeue"
            claims, next_due = await self._claim(script, worker_id, lease_ms, limit, landing_ms)
            if claims:
                return claims

    async def _wait_for_events(
        self, worker_id: str, lease_ms: int, limit: int, deadline: float
    ) -> list[Claim]:
        # The blocking connection is busy (another namespace or task waits on it):
        # wait for enqueue events on the shared pub/sub connection instead.
        async with self.subscribe(Channel.EVENTS) as events:
            while True:
                claims, next_due = await self._claim("dequeue", worker_id, lease_ms, limit, 0)
                if claims:
                    return claims
                wait = deadline - asyncio.get_running_loop().time()
                if wait <= 0:
                    return []
                if next_due is not None:
                    wait = min(wait, (next_due + 1) / 1000)
                try:
                    async with asyncio.timeout(wait):
                        async for event in events:
                            if event.kind in _WAKE_KINDS:
                                break
                except TimeoutError:
                    pass

    async def renew_leases(self, worker_id: str, job_ids: Sequence[str], lease_ms: int) -> list[str]:
        """Extend the leases of the worker's running jobs; return the ids it must stop."""
        _check_ms(lease_ms, "lease_ms", 1)
        if not job_ids:
            return []
        reply = await self._run("renew_leases", worker_id, lease_ms, *job_ids)
        return [text(job_id) for job_id in reply]

    async def release(self, job_id: str, worker_id: str) -> bool:
        """Give a claimed job back to the head of the queue, its attempt not counted."""
        return bool(await self._run("release", job_id, worker_id))

    async def complete(self, job_id: str, worker_id: str, result: bytes, ttl_ms: int) -> bool:
        """Store the result, set ``completed`` and expire the record after ``ttl_ms``."""
        return await self._finish("complete", job_id, worker_id, result, ttl_ms)

    async def fail(self, job_id: str, worker_id: str, error: bytes, ttl_ms: int) -> bool:
        """Store the error, set ``failed`` and expire the record after ``ttl_ms``."""
        return await self._finish("fail", job_id, worker_id, error, ttl_ms)

    async def _finish(self, script: str, job_id: str, worker_id: str, data: bytes, ttl_ms: int) -> bool:
        if not isinstance(data, bytes):
            raise TypeError(f"{script} data must be bytes, not {type(data).__name__}")
        inline = "1" if len(data) <= INLINE_RESULT_LIMIT else "0"
        return bool(await self._run(script, job_id, worker_id, data, _check_ms(ttl_ms, "ttl_ms"), inline))

    async def retry(self, job_id: str, worker_id: str, error: bytes, delay_ms: int) -> bool:
        """Store the error, set ``failing`` and schedule the job ``delay_ms`` from now."""
        if not isinstance(error, bytes):
            raise TypeError(f"error must be bytes, not {type(error).__name__}")
        return bool(await self._run("retry", job_id, worker_id, error, _check_ms(delay_ms, "delay_ms")))

    async def cancel(self, job_id: str) -> JobState | None:
        """Cancel a job that has not started; return the state it had."""
        reply = await self._run("cancel", job_id)
        return None if reply is None else JobState(text(reply))

    async def request_abort(self, job_id: str) -> JobState | None:
        """Cancel a job not started, or flag a processing one; return the state it had."""
        reply = await self._run("abort", job_id)
        return None if reply is None else JobState(text(reply))

    async def recover_stalled(self) -> list[Stalled]:
        """Put every job whose lease expired back at the head of the queue."""
        reply = await self._run("recover_stalled")
        return [Stalled(text(reply[i]), text(reply[i + 1])) for i in range(0, len(reply), 2)]

    async def next_lease_expiry(self) -> int | None:
        """Milliseconds until the earliest lease expires (None: no lease)."""
        reply = await self._run("next_lease_expiry")
        return None if reply is None else int(reply)

    # ------------------------------------------------------------ notifications

    def subscribe(self, *channels: Channel) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        """Listen to the namespace's channels on the shared pub/sub connection."""
        if not channels:
            raise ValueError("subscribe needs at least one channel")
        names = [self._keys.channel(Channel(channel)).encode() for channel in dict.fromkeys(channels)]
        return self._subscription(names)

    @asynccontextmanager
    async def _subscription(self, names: list[bytes]) -> AsyncIterator[AsyncIterator[StorageEvent]]:
        hub = self._conns().pubsub
        subscription = Subscription(names)
        await hub.add(subscription)
        try:
            yield subscription
        finally:
            hub.remove(subscription)
