"""``PostgresStorage``: the storage contract on PostgreSQL, through asyncpg.

Each hot-path primitive (enqueue, claim, finish, heartbeat, progress) is one
statement (``_sql``), so it is atomic without an explicit transaction and
costs one round trip. Rarely used changes (cancel, TTL updates) read the row
under a lock, decide with the ``rules`` functions themselves and write, in one
transaction. Blocking claims wait on LISTEN/NOTIFY (``_events``); a claim
right after one that took every ready job waits at once when no notification
came in between (``Drained``, ``_claiming``), so a request costs one claim, not two.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Self

from jobqueue import JobState
from jobqueue.storage import (
    DEFAULT_NAMESPACE,
    Channel,
    ControlChannel,
    EventKind,
    Finish,
    FinishKind,
    JobRecord,
    LeaderLock,
    Migrations,
    Monitoring,
    Recovery,
    Revoked,
    Stalled,
    Storage,
    StorageEvent,
    TransactionalEnqueue,
    TtlOutcome,
    rules,
)

from ._admin import PostgresAdminMixin
from ._claiming import ClaimMixin
from ._connection import Conn, Shared, pg_errors
from ._enqueue import EnqueueMixin, clamp_ms
from ._events import Subscription, listen_channels, notify_channel, wake_channel
from ._migrations import migrate
from ._records import Options, channel_name, encode_name, present, to_record

__all__ = ["PostgresStorage"]

_BATCH = 1000
"""Rows recovered or swept per statement."""

_MAX_SWEEP_BATCHES = 20
"""Sweep statements per ``recover_stalled`` pass: a huge backlog is deleted over several passes."""


class PostgresStorage(
    EnqueueMixin,
    ClaimMixin,
    PostgresAdminMixin,
    Storage,
    Monitoring,
    LeaderLock,
    ControlChannel,
    Migrations,
    TransactionalEnqueue,
):
    """Jobs in PostgreSQL tables: ``SKIP LOCKED`` claims, ``LISTEN/NOTIFY`` wake-ups, transactional enqueue.

    ``PostgresStorage("postgresql://user@host/db", schema="jobqueue")`` or
    ``jobqueue.storage_from_url("postgresql://user@host/db?schema=jobqueue&pool_max=10")``.
    The first ``connect`` creates or migrates the schema (see ``migrate``).
    """

    def __init__(
        self,
        dsn: str = "postgresql://localhost/postgres",
        *,
        schema: str = "jobqueue",
        pool_min: int = 2,
        pool_max: int = 10,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
        name: str = DEFAULT_NAMESPACE,
    ) -> None:
        """Build a storage (nothing connects until ``connect``).

        Args:
            dsn: a libpq-style ``postgresql://`` URL for asyncpg (without our options).
            schema: the schema holding the tables: lower-case letters, digits and ``_``.
            pool_min: connections the pool keeps open (two: a claim woken while an enqueue runs needs a second).
            pool_max: connections the pool may open (a blocking claim does not hold one while it waits).
            connect_timeout: seconds to open a connection (TCP, TLS, authentication) before ``StorageError``.
            command_timeout: seconds a statement (or the transaction of a cancel) may take before
                ``StorageError``; the connection is then dropped. A blocking claim waits on ``LISTEN``,
                not in a statement, so it may wait longer.
            name: the namespace.

        Raises:
            ValueError: a bad schema name, pool size, timeout or namespace.
        """
        self._shared = Shared(
            Options.build(
                dsn,
                schema=schema,
                pool_min=pool_min,
                pool_max=pool_max,
                connect_timeout=connect_timeout,
                command_timeout=command_timeout,
            )
        )
        self._bind(name)

    @classmethod
    def from_url(cls, url: str) -> PostgresStorage:
        """Build a storage from ``postgresql://`` or ``postgres://`` and its query options.

        Ours: ``schema``, ``pool_min``, ``pool_max``, ``connect_timeout`` and ``command_timeout`` (seconds);
        libpq options asyncpg understands (``sslmode``, ``application_name`` ...) pass through.

        Raises:
            TypeError: ``url`` is not a str.
            ValueError: another scheme, an unknown option or a bad value.
        """
        options = Options.from_url(url)
        return cls(
            options.dsn,
            schema=options.schema,
            pool_min=options.pool_min,
            pool_max=options.pool_max,
            connect_timeout=options.connect_timeout,
            command_timeout=options.command_timeout,
        )

    def _bind(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"namespace name must be a non-empty str, got {name!r}")
        self._name = name
        self._ns = encode_name(name, "namespace name")
        self._channel = channel_name(self._shared.options.schema, self._ns)  # the stem
        self._wake = wake_channel(self._channel)

    def __repr__(self) -> str:
        return f"PostgresStorage(schema={self._shared.options.schema!r}, namespace={self._name!r})"

    # ---------------------------------------------------------------- lifecycle

    @property
    def name(self) -> str:
        """The namespace this instance is bound to."""
        return self._name

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding the storage's tables."""
        return self._shared.options.schema

    def _view(self, name: str) -> Self:
        view = copy.copy(self)
        view._bind(name)
        return view

    async def connect(self) -> None:
        """Open the pool (and migrate the schema) on the first call; later calls take a reference."""
        await self._shared.open(self._wake)

    async def disconnect(self) -> None:
        """Release one ``connect``; the last ends subscriptions and closes the connections."""
        await self._shared.close()

    async def migrate(self) -> int:
        """Create or upgrade the schema now; return its version (``connect`` does it too).

        Raises:
            StorageError: the schema is newer than this code, or the server failed.
        """
        with pg_errors("migrate"):
            async with self._shared.pool.acquire() as conn:
                return await migrate(conn, self.schema)

    # -------------------------------------------------------------------- queue

    async def _finish(self, worker_id: str, outcomes: Sequence[Finish]) -> list[bool]:
        firsts: dict[str, Finish] = {}
        for outcome in outcomes:
            firsts.setdefault(outcome.job_id, outcome)
        unique = list(firsts.values())
        rows = await self._fetch(
            None,
            "finish",
            self._shared.sql.finish,
            self._ns,
            encode_name(worker_id, "worker_id"),
            [encode_name(o.job_id, "job_id") for o in unique],
            [FinishKind(o.kind).value for o in unique],
            [o.data for o in unique],
            [clamp_ms(o.ms) for o in unique],
            [
                rules.inline(o.data) if o.kind in (FinishKind.COMPLETE, FinishKind.FAIL) else None
                for o in unique
            ],
            notify_channel(self._channel, EventKind.COMPLETED),  # and failed
            rules.MAX_DEADLINE_MS,
            self._wake,  # failing and requeued
        )
        stored = {o.job_id: bool(row[1]) for o, row in zip(unique, rows, strict=True)}
        # A repeated id in one batch: the first finish ends the attempt, so the job is no longer owned.
        result: list[bool] = []
        for outcome in outcomes:
            result.append(stored.pop(outcome.job_id, False))
        return result

    async def _heartbeat(
        self, worker_id: str, ttl_ms: int | None, job_ids: Sequence[str], lease_ms: int, info: bytes
    ) -> dict[str, Revoked]:
        rows = await self._fetch(
            None,
            "heartbeat",
            self._shared.sql.heartbeat,
            self._ns,
            encode_name(worker_id, "worker_id"),
            None if ttl_ms is None else clamp_ms(ttl_ms),
            [encode_name(job_id, "job_id") for job_id in job_ids],
            clamp_ms(lease_ms),
            rules.MAX_DEADLINE_MS,
            notify_channel(self._channel, EventKind.WORKER_JOINED),
            info,
        )
        aborted = {bytes(row[0]).decode("utf-8"): bool(row[1]) for row in rows}
        revoked: dict[str, Revoked] = {}
        for job_id in job_ids:
            if job_id not in aborted:
                revoked[job_id] = Revoked.LOST  # rules.renew: no longer the worker's
            elif aborted[job_id]:
                revoked[job_id] = Revoked.ABORTED
        return revoked

    async def _unregister_worker(self, worker_id: str) -> None:
        await self._execute(
            "unregister",
            self._shared.sql.unregister,
            self._ns,
            encode_name(worker_id, "worker_id"),
            notify_channel(self._channel, EventKind.WORKER_LEFT),
        )

    async def _set_progress(self, job_id: str, worker_id: str, data: bytes) -> bool:
        rows = await self._fetch(
            None,
            "set_progress",
            self._shared.sql.set_progress,
            self._ns,
            encode_name(job_id, "job_id"),
            encode_name(worker_id, "worker_id"),
            data,
            notify_channel(self._channel, EventKind.PROGRESS),
        )
        return bool(rows)

    async def _cancel(self, job_id: str, *, abort: bool) -> JobState | None:
        sql, key = self._shared.sql, encode_name(job_id, "job_id")
        async with self._shared.transaction("cancel") as conn:
            locked = await self._locked(conn, key)
            if locked is None:
                return None
            record, _ = locked
            step = rules.cancel(record, abort=abort)
            if step is not None:
                if step.record is None:
                    await conn.execute(sql.delete_job, self._ns, key)
                else:
                    await conn.execute(sql.flag_abort, self._ns, key)
                if step.event is not None:
                    worker = record.worker_id if step.event is EventKind.ABORT else None
                    await conn.execute(
                        sql.notify,
                        notify_channel(self._channel, step.event),
                        step.event.value,
                        key,
                        None if worker is None else encode_name(worker, "worker_id"),
                        step.data,
                    )
            return record.state

    async def _locked(self, conn: Conn, key: bytes) -> tuple[JobRecord, int] | None:
        """The live record, locked until the transaction ends, as readers see it, and the server's now."""
        row = await conn.fetchrow(self._shared.sql.lock_job, self._ns, key)
        if row is None:
            return None
        now: int = row[15]
        return present(to_record(row), now), now

    async def _recover_stalled(self) -> Recovery:
        sql = self._shared.sql
        stalled: list[Stalled] = []
        while True:
            rows = await self._fetch(None, "recover_stalled", sql.recover, self._ns, _BATCH, self._wake)
            stalled += [
                Stalled(bytes(row[0]).decode("utf-8"), bytes(row[1] or b"").decode("utf-8")) for row in rows
            ]
            if len(rows) < _BATCH:
                break
        # Then the sweep, in batches, and the next lease deadline: one round trip in the common case.
        for _ in range(_MAX_SWEEP_BATCHES):
            row = await self._fetchrow("recover_stalled", sql.sweep, self._ns, _BATCH)
            if row[0] < _BATCH:
                break
        next_ms = row[1]
        return Recovery(stalled, None if next_ms is None else max(next_ms, 0))

    # ---------------------------------------------------------------- job state

    async def _get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        keys = [encode_name(job_id, "job_id") for job_id in job_ids]
        rows = await self._fetch(None, "get", self._shared.sql.get_many, self._ns, keys)
        found = {bytes(row[0]): present(to_record(row), row[15]) for row in rows}
        return [found.get(key) for key in keys]

    async def _update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        key = encode_name(job_id, "job_id")
        async with self._shared.transaction("update_ttl") as conn:
            locked = await self._locked(conn, key)
            if locked is None:
                return "not_found"  # rules.update_ttl of no record
            record, now = locked
            step, outcome = rules.update_ttl(record, now, clamp_ms(ttl_ms))
            if step is not None and step.record is not None:
                await conn.execute(self._shared.sql.set_expiry, self._ns, key, step.record.expires_at)
            return outcome

    # ------------------------------------------------------------ notifications

    def _subscribe(
        self, channels: frozenset[Channel]
    ) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        return self._subscription(channels)

    @asynccontextmanager
    async def _subscription(self, channels: frozenset[Channel]) -> AsyncIterator[AsyncIterator[StorageEvent]]:
        subscription = Subscription(channels, self._fetch_data)
        listener = self._shared.listener
        with pg_errors("subscribe"):
            await listener.add(listen_channels(self._channel, channels), subscription)
        try:
            yield subscription
        finally:
            listener.remove(listen_channels(self._channel, channels), subscription)
            subscription.close()

    async def _fetch_data(self, event: StorageEvent) -> bytes | None:
        """The data an event left out (over the NOTIFY limit): result, error or progress, from the row."""
        row = await self._fetchrow(
            "subscribe", self._shared.sql.job_data, self._ns, encode_name(event.job_id, "job_id")
        )
        if row is None:
            return None
        column = {EventKind.COMPLETED: 0, EventKind.FAILED: 1, EventKind.PROGRESS: 2}.get(event.kind)
        return None if column is None or row[column] is None else bytes(row[column])
