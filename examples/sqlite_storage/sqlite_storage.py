"""``SqliteStorage``: a third-party storage on stdlib ``sqlite3``, written only against ``jobqueue.storage``.

It passes both conformance suites, capabilities included. Every state change
is a pure function of ``rules``: read the record, ask ``rules``, write the
``Step`` (``_apply``). One connection, used from the event loop's thread with
no ``await`` between read and write, so each primitive is atomic (no locks).
Blocked claims wait on an ``asyncio.Event`` (no polling); events go to
in-process subscribers. Rows past their TTL are invisible at once
(``rules.is_live``) and deleted by ``recover_stalled``, the reaper's sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Self

from jobqueue.storage import (
    DEFAULT_NAMESPACE,
    Channel,
    Claim,
    ControlChannel,
    EnqueueOutcome,
    EventKind,
    Finish,
    JobPage,
    JobRecord,
    JobState,
    LeaderLock,
    Monitoring,
    NewJob,
    Recovery,
    Revoked,
    Stalled,
    Storage,
    StorageError,
    StorageEvent,
    TtlOutcome,
    WorkerRecord,
    now_ms,
    page_jobs,
    rules,
)

__all__ = ["SqliteStorage"]

_FIELDS = [field.name for field in dataclasses.fields(JobRecord)]
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (ns TEXT, {", ".join(_FIELDS)}, seq INTEGER DEFAULT 0, PRIMARY KEY (ns, id));
CREATE INDEX IF NOT EXISTS ready ON jobs (ns, state, priority DESC, seq);
CREATE TABLE IF NOT EXISTS workers (
    ns TEXT, id TEXT, last_seen INTEGER, expires_at INTEGER, info BLOB, PRIMARY KEY (ns, id)
);
CREATE TABLE IF NOT EXISTS locks (ns TEXT, key TEXT, owner TEXT, expires_at INTEGER, PRIMARY KEY (ns, key));
"""
_UPSERT = (
    f"INSERT INTO jobs (ns, {', '.join(_FIELDS)}) VALUES (?{', ?' * len(_FIELDS)}) "
    f"ON CONFLICT (ns, id) DO UPDATE SET {', '.join(f'{f} = excluded.{f}' for f in _FIELDS[1:])}"
)
_SELECT = f"SELECT {', '.join(_FIELDS)} FROM jobs"


def _record(row: Sequence[Any]) -> JobRecord:
    values = dict(zip(_FIELDS, row, strict=True))
    values["state"] = JobState(values["state"])
    values["abort_requested"] = bool(values["abort_requested"])
    return JobRecord(**values)


class _Shared:
    """What every namespace view shares: the connection, wake-ups, subscribers."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.db: sqlite3.Connection | None = None
        self.refs = 0
        self.seq = itertools.count(1)  # queue positions: tail = +n, head = -n
        self.wake: dict[str, asyncio.Event] = {}
        self.subscribers: dict[str, list[tuple[frozenset[Channel], asyncio.Queue[StorageEvent]]]] = {}


class SqliteStorage(Storage, Monitoring, LeaderLock, ControlChannel):
    """A storage in one SQLite database (``":memory:"`` by default), for one process.

    ``SqliteStorage(path)`` is the ``default`` namespace; ``namespace(name)``
    views share its connection.
    """

    def __init__(self, path: str = ":memory:", *, name: str = DEFAULT_NAMESPACE) -> None:
        self._shared = _Shared(path)
        self._name = name

    @property
    def name(self) -> str:
        """The namespace this instance is bound to."""
        return self._name

    def _view(self, name: str) -> Self:
        view = type(self)(self._shared.path, name=name)
        view._shared = self._shared
        return view

    async def connect(self) -> None:
        """Open the database on the first reference (views share the count)."""
        shared = self._shared
        if shared.db is None:
            shared.db = sqlite3.connect(shared.path, isolation_level=None)
            shared.db.executescript(_SCHEMA)
            (last,) = shared.db.execute("SELECT max(abs(seq)) FROM jobs").fetchone()
            shared.seq = itertools.count((last or 0) + 1)  # a reopened file keeps its FIFO order
        shared.refs += 1

    async def disconnect(self) -> None:
        """Drop one reference; the last one closes the database."""
        shared = self._shared
        shared.refs = max(shared.refs - 1, 0)
        if shared.refs == 0 and shared.db is not None:
            shared.db.close()
            shared.db = None

    # ----------------------------------------------------------------- helpers

    def _sql(self, sql: str, *args: Any) -> list[Any]:
        if self._shared.db is None:
            raise StorageError(f"sqlite storage (namespace {self._name!r}) is not connected")
        try:
            return self._shared.db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"sqlite: {exc}") from exc

    def _ns(self, sql: str, *args: Any) -> list[Any]:
        """A statement over this namespace: its first parameter is the namespace."""
        return self._sql(sql, self._name, *args)

    def _get(self, job_id: str, now: int) -> JobRecord | None:
        rows = self._ns(f"{_SELECT} WHERE ns = ? AND id = ?", job_id)
        record = _record(rows[0]) if rows else None
        return record if record is not None and rules.is_live(record, now) else None

    def _apply(self, job_id: str, step: rules.Step | None, now: int, worker_id: str | None = None) -> bool:
        """Write one ``rules`` step: the record (or its deletion), its queue place, its event; False: no step."""
        if step is None:
            return False
        if step.record is None:
            self._ns("DELETE FROM jobs WHERE ns = ? AND id = ?", job_id)
        else:
            values = [getattr(step.record, f) for f in _FIELDS]
            self._ns(_UPSERT, *values)
            if step.place in (rules.Place.TAIL, rules.Place.HEAD):
                seq = next(self._shared.seq) * (1 if step.place is rules.Place.TAIL else -1)
                self._ns("UPDATE jobs SET seq = ?3 WHERE ns = ?1 AND id = ?2", job_id, seq)
        if step.place is not rules.Place.NONE:
            self._wake()
        if step.event is not None:
            self._publish(StorageEvent(step.event, job_id, now, worker_id, step.data))
        return True

    def _wake(self) -> None:
        event = self._shared.wake.pop(self._name, None)
        if event is not None:
            event.set()  # every blocked claim of the namespace looks again

    def _publish(self, event: StorageEvent) -> None:
        for channels, queue in self._shared.subscribers.get(self._name, []):
            for channel in event.kind.channels:
                if channel in channels:
                    queue.put_nowait(event)

    # ------------------------------------------------------------------- queue

    async def _enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        outcomes = []
        now = now_ms()
        for job in jobs:  # a later duplicate in the batch finds the earlier job's row
            existing = self._get(job.id, now)
            if existing is not None:
                outcomes.append(EnqueueOutcome(accepted=False, existing=existing))
                continue
            self._apply(job.id, rules.new_record(job, now), now)
            outcomes.append(EnqueueOutcome(accepted=True))
        return outcomes

    def _promote(self, now: int) -> int | None:
        """Make due scheduled jobs ready; return when the next one falls due (None: none)."""
        due = self._ns(
            f"{_SELECT} WHERE ns = ? AND run_at IS NOT NULL AND state IN ('queued', 'failing') ORDER BY run_at, seq"
        )
        for record in map(_record, due):
            if not rules.is_due(record, now):
                return record.run_at
            self._apply(record.id, rules.promote(record, now), now)
        return None

    def _claim_now(self, worker_id: str, lease_ms: int, limit: int) -> tuple[list[Claim], int | None]:
        now = now_ms()
        next_due = self._promote(now)
        rows = self._ns(
            f"{_SELECT} WHERE ns = ? AND state = 'queued' AND run_at IS NULL ORDER BY priority DESC, seq LIMIT ?",
            limit,
        )
        claims = []
        for record in map(_record, rows):
            step = rules.claim(record, worker_id, now, lease_ms)
            self._apply(record.id, step, now, worker_id)
            claims.append(Claim(record.id, record.message, record.attempts + 1))
        return claims, next_due

    async def _claim(self, worker_id: str, lease_ms: int, limit: int, timeout_ms: int) -> list[Claim]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while True:
            wake = self._shared.wake.setdefault(self._name, asyncio.Event())
            claims, next_due = self._claim_now(worker_id, lease_ms, limit)
            left = deadline - loop.time()
            if claims or left <= 0:
                return claims
            if next_due is not None:  # wake up when the next scheduled job falls due
                left = min(left, max(next_due - now_ms(), 0) / 1000 + 0.001)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await wake.wait()

    async def _finish(self, worker_id: str, outcomes: Sequence[Finish]) -> list[bool]:
        now = now_ms()
        done = []
        for outcome in outcomes:
            record = self._get(outcome.job_id, now)
            mine = record if record is not None and rules.owned(record, worker_id) else None
            step = rules.finish(mine, outcome, now) if mine is not None else None
            done.append(self._apply(outcome.job_id, step, now, worker_id))
        return done

    async def _heartbeat(
        self, worker_id: str, ttl_ms: int | None, job_ids: Sequence[str], lease_ms: int, info: bytes
    ) -> dict[str, Revoked]:
        now = now_ms()
        if ttl_ms is not None:
            joined = rules.register_worker(self._registration(worker_id), now)
            until = rules.later(now, ttl_ms)
            self._ns("INSERT OR REPLACE INTO workers VALUES (?, ?, ?, ?, ?)", worker_id, now, until, info)
            if joined is not None:
                self._publish(StorageEvent(joined, "", now, worker_id))
        revoked = {}
        for job_id in job_ids:
            step, why = rules.renew(self._get(job_id, now), worker_id, now, lease_ms)
            self._apply(job_id, step, now)
            if why is not None:
                revoked[job_id] = why
        return revoked

    async def _unregister_worker(self, worker_id: str) -> None:
        now = now_ms()
        left = rules.unregister_worker(self._registration(worker_id), now)
        self._ns("DELETE FROM workers WHERE ns = ? AND id = ?", worker_id)
        if left is not None:
            self._publish(StorageEvent(left, "", now, worker_id))

    def _registration(self, worker_id: str) -> int | None:
        """When the worker's registration lapses (None: it has none)."""
        rows = self._ns("SELECT expires_at FROM workers WHERE ns = ? AND id = ?", worker_id)
        return int(rows[0][0]) if rows else None

    async def _set_progress(self, job_id: str, worker_id: str, data: bytes) -> bool:
        now = now_ms()
        return self._apply(
            job_id, rules.set_progress(self._get(job_id, now), worker_id, data), now, worker_id
        )

    async def _cancel(self, job_id: str, *, abort: bool) -> JobState | None:
        now = now_ms()
        record = self._get(job_id, now)
        if record is None:
            return None
        self._apply(job_id, rules.cancel(record, abort=abort), now, record.worker_id)
        return record.state

    async def _recover_stalled(self) -> Recovery:
        now = now_ms()
        self._sweep(now)
        rows = self._ns(f"{_SELECT} WHERE ns = ? AND state = 'processing' ORDER BY lease_until, seq")
        stalled = []
        next_expiry = None
        for record in map(_record, rows):
            if not rules.is_stalled(record, now):
                next_expiry = record.lease_until - now if record.lease_until is not None else None
                break
            worker = record.worker_id or ""
            self._apply(record.id, rules.recover(record, now), now, worker)
            self._publish(StorageEvent(EventKind.REQUEUED, record.id, now))
            stalled.append(Stalled(record.id, worker))
        return Recovery(stalled, next_expiry)

    def _sweep(self, now: int) -> None:
        """Delete what has expired: results past their TTL, lapsed idle workers, lapsed locks."""
        self._ns("DELETE FROM jobs WHERE ns = ? AND expires_at <= ?", now)
        self._ns("DELETE FROM locks WHERE ns = ? AND expires_at <= ?", now)
        self._ns(
            "DELETE FROM workers WHERE ns = ?1 AND expires_at <= ?2 AND id NOT IN "
            "(SELECT worker_id FROM jobs WHERE ns = ?1 AND state = 'processing')",
            now,
        )

    async def _get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        now = now_ms()
        return [self._get(job_id, now) for job_id in job_ids]

    async def _update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        now = now_ms()
        step, outcome = rules.update_ttl(self._get(job_id, now), now, ttl_ms)
        self._apply(job_id, step, now)
        return outcome

    @contextlib.asynccontextmanager
    async def _subscribe(self, channels: frozenset[Channel]) -> AsyncIterator[AsyncIterator[StorageEvent]]:
        queue: asyncio.Queue[StorageEvent] = asyncio.Queue()
        entry = (channels, queue)
        subscribers = self._shared.subscribers.setdefault(self._name, [])
        subscribers.append(entry)
        try:
            yield _drain(queue)
        finally:
            subscribers.remove(entry)

    # -------------------------------------------------------------- monitoring

    def _live(self, where: str = "", *args: Any) -> list[JobRecord]:
        rows = self._ns(f"{_SELECT} WHERE ns = ? {where}", *args)
        now = now_ms()
        return [record for record in map(_record, rows) if rules.is_live(record, now)]

    async def _counts(self) -> Mapping[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for record in self._live():
            counts[record.state] += 1
        return counts

    async def _list_jobs(
        self, state: JobState | None, prefix: str, cursor: str | None, limit: int
    ) -> JobPage:
        return page_jobs(self._live(), state=state, prefix=prefix, cursor=cursor, limit=limit)

    async def _list_namespaces(self) -> Iterable[str]:
        now = now_ms()
        jobs = self._sql("SELECT DISTINCT ns FROM jobs WHERE expires_at IS NULL OR expires_at > ?", now)
        workers = self._sql("SELECT DISTINCT ns FROM workers WHERE expires_at > ?", now)
        return {row[0] for row in jobs + workers}

    async def _list_workers(self) -> Iterable[WorkerRecord]:
        now = now_ms()
        holdings: dict[str, list[str]] = {}
        for record in self._live("AND state = 'processing' ORDER BY id"):
            holdings.setdefault(record.worker_id or "", []).append(record.id)
        rows = self._ns("SELECT id, last_seen, expires_at, info FROM workers WHERE ns = ?")
        return [
            WorkerRecord(worker_id, last_seen, expires_at, tuple(holdings.get(worker_id, ())), info or b"")
            for worker_id, last_seen, expires_at, info in rows
            if expires_at > now or worker_id in holdings
        ]

    async def _purge(self, states: frozenset[JobState]) -> int:
        doomed = [record.id for record in self._live() if record.state in states]
        for job_id in doomed:
            self._ns("DELETE FROM jobs WHERE ns = ? AND id = ?", job_id)
        return len(doomed)

    async def _retry_failed(self, job_id: str) -> bool:
        now = now_ms()
        return self._apply(job_id, rules.reset_failed(self._get(job_id, now), now), now)

    # ------------------------------------------------------------- leader lock

    async def acquire_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take ``key`` for ``owner`` for ``ttl_ms``, or renew it; False while another owner holds it."""
        now = now_ms()
        rows = self._ns("SELECT owner, expires_at FROM locks WHERE ns = ? AND key = ?", key)
        if rows and rows[0][0] != owner and rows[0][1] > now:
            return False
        self._ns("INSERT OR REPLACE INTO locks VALUES (?, ?, ?, ?)", key, owner, rules.later(now, ttl_ms))
        return True

    async def release_lock(self, key: str, owner: str) -> bool:
        """Release ``key`` if ``owner`` holds it (and it has not lapsed)."""
        rows = self._ns(
            "DELETE FROM locks WHERE ns = ? AND key = ? AND owner = ? AND expires_at > ? RETURNING key",
            key,
            owner,
            now_ms(),
        )
        return bool(rows)


async def _drain(queue: asyncio.Queue[StorageEvent]) -> AsyncIterator[StorageEvent]:
    while True:
        yield await queue.get()
