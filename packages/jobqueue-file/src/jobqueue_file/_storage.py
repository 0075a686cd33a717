"""``FileStorage``: the storage contract on a directory, shared by any number of processes on one host.

Invariants (what survives ``kill -9`` at any instant):

1. A job's *record* (``jobs/<key>``) is the truth. It is only ever replaced
   whole (a spare file written and flushed, then swapped in: ``_spares``), so
   it is either the old or the new one.
   Every change of a record is a step of ``jobqueue.storage.rules``.
2. A job with a record has exactly one *entry* file, in ``queue/``,
   ``scheduled/``, ``processing/<worker>/`` or (finished) ``expiry/``; the
   record names it. Entries are moved by ``rename`` (atomic), never copied.
3. Every change of a job happens under its job lock (``flock``, released by
   the kernel when a process dies), so a lock holder only ever finds a state
   that is consistent or left half-done by a dead process.
4. The order of the two steps of a change (``Space.apply``) makes every
   half-done state repairable from the record alone: a new incarnation's
   entry is created before its record (an entry without a record is
   dropped); an entry moves *into* ``processing/`` before its record says
   so, and the record says a job *left* ``processing/`` before its entry
   moves out. So a record that says "processing" always has its entry in
   ``processing/``, and whatever an entry disagrees with, it is moved to
   where its record says (``settle``): on sight when claiming, promoting or
   sweeping, at ``connect()`` and in ``recover_stalled()``. Those background
   passes skip a job whose lock is taken (its holder may be frozen) and come
   back for it ``BUSY_RETRY_MS`` later (``_locks``). Entries carry a
   per-incarnation ``uid``, so a stale entry is never mistaken for a newer
   job with the same id.
5. Temp files (``.tmp-<pid>-...``) of dead processes are removed at
   ``connect()`` and by the sweep.

Every disk operation runs in a worker thread (``asyncio.to_thread``), but
for a subscriber's read of what was just appended to the event log. A
blocked ``dequeue`` or a subscriber waits on inotify (``_watch``), with a
slow poll (``FALLBACK_POLL_SECONDS``) as a safety net. Expired records are
invisible at once; every connected process sweeps the root (``_sweep``) at
the next deadline it knows of, and at least every ``cleanup_interval``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Self, TypeVar

from jobqueue import JobState, StorageError
from jobqueue.storage import (
    DEFAULT_NAMESPACE,
    Channel,
    Claim,
    ControlChannel,
    EnqueueOutcome,
    Finish,
    JobPage,
    JobRecord,
    LeaderLock,
    Monitoring,
    NewJob,
    Recovery,
    Revoked,
    Storage,
    StorageEvent,
    TtlOutcome,
    WorkerRecord,
    cancel_and_wait,
    map_exceptions,
    now_ms,
)

from . import _monitor_ops as monitor_ops
from . import _queue_ops as queue_ops
from . import _root as root_ops
from . import _worker_ops as worker_ops
from ._atomic import DEFAULT_MODE, check_mode
from ._feed import FALLBACK_POLL_SECONDS, subscription
from ._root import Root, parse_url
from ._space import Space
from ._watch import DirWatcher

__all__ = ["FileStorage"]

_log = logging.getLogger("jobqueue.file")

T = TypeVar("T")


class FileStorage(Storage, Monitoring, LeaderLock, ControlChannel):
    """Jobs kept as files under a directory: durable, crash-safe, shared by the processes of one host.

    Args:
        path: the root directory (created when missing); each namespace is a
            directory under it.
        name: the namespace of this view.
        durable: fsync every write (default). ``False`` keeps every write
            atomic, so a crash of the process loses nothing, but a power loss
            may lose the last writes.
        cleanup_interval: the longest pause, in seconds, between two sweeps of
            expired records and lapsed workers (a sweep also runs at every
            deadline this process knows of).
        mode: permission bits of the files created (default ``0o600``);
            directories get the matching search bits (``0o700``, or ``0o770``
            for ``0o660``). Must let the owner read and write.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        name: str = DEFAULT_NAMESPACE,
        *,
        durable: bool = True,
        cleanup_interval: float = 1.0,
        mode: int = DEFAULT_MODE,
    ) -> None:
        root = os.fspath(path)
        if not isinstance(root, str) or not root:
            raise ValueError(f"path must be a non-empty directory path, got {path!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"namespace name must be a non-empty str, got {name!r}")
        if not isinstance(durable, bool):
            raise TypeError(f"durable must be a bool, not {type(durable).__name__}")
        if not (isinstance(cleanup_interval, int | float) and 0 < cleanup_interval < math.inf):
            raise ValueError(
                f"cleanup_interval must be a finite number of seconds > 0, got {cleanup_interval!r}"
            )
        self._root = Root(
            os.path.abspath(root),
            durable=durable,
            mode=check_mode(mode),
            cleanup_interval=float(cleanup_interval),
        )
        self._name = name

    @classmethod
    def from_url(cls, url: str) -> FileStorage:
        """Build a storage from ``file:///var/lib/app/queue?durable=false&mode=0660``.

        Raises:
            TypeError: ``url`` is not a string.
            ValueError: not a ``file://`` URL, a host other than ``localhost``,
                no path, or an unknown option or value.
        """
        path, name, durable, mode = parse_url(url)
        return cls(path, name, durable=durable, mode=mode)

    def __repr__(self) -> str:
        root = self._root
        return f"FileStorage({root.path!r}, namespace={self._name!r}, durable={root.durable}, mode={oct(root.mode)})"

    @property
    def path(self) -> str:
        """The root directory."""
        return self._root.path

    # ---------------------------------------------------------------- lifecycle

    @property
    def name(self) -> str:
        """The namespace this instance is bound to."""
        return self._name

    def _view(self, name: str) -> Self:
        view = copy.copy(self)
        view._name = name
        return view

    async def connect(self) -> None:
        """Create the directories, repair what a crash left half-done, start the sweep."""
        root = self._root
        async with root.guard:
            root.refs += 1
            try:
                await self._space()
            except BaseException:
                root.refs -= 1
                raise
            if root.cleaner is None:
                root.loop = asyncio.get_running_loop()
                root.wake = asyncio.Event()  # bound to this loop: a later connect may run on another
                root.plan_sweep(now_ms())  # at once: a crashed process may have left expired files
                root.cleaner = asyncio.create_task(self._sweep_forever(), name="jobqueue-file-sweep")

    async def disconnect(self) -> None:
        """Release one ``connect``; the last one stops the watchers and the sweep."""
        root = self._root
        async with root.guard:
            if root.refs <= 0:
                return
            root.refs -= 1
            if root.refs > 0:
                return
            cleaner, root.cleaner = root.cleaner, None
            await cancel_and_wait(cleaner)
            sweeping, root.sweeping = root.sweeping, None
            if sweeping is not None:
                with contextlib.suppress(Exception):  # already logged, or the next connect sees it again
                    await sweeping
            watchers = list(root.watchers.values())
            spaces = [*root.spaces.values(), *root.swept.values()]
            root.watchers.clear()
            root.spaces.clear()
            root.swept.clear()
            root.indexes.clear()
            root.loop = None
            await asyncio.to_thread(root_ops.close_root, root, watchers, spaces)

    async def _space(self) -> Space:
        root = self._root
        if root.refs <= 0:
            raise StorageError(f"file storage at {root.path} is not connected; call connect()")
        space = root.spaces.get(self._name)
        if space is None:
            with map_exceptions({OSError: StorageError}, f"file storage: opening {root.path}"):
                space = await asyncio.to_thread(root_ops.open_namespace, root, self._name)
            kept = root.spaces.setdefault(self._name, space)
            if kept is not space:  # opened twice concurrently: keep one
                await asyncio.to_thread(space.close)
            space = kept
        return space

    async def _watcher(self, space: Space) -> DirWatcher:
        watcher = self._root.watchers.get(self._name)
        if watcher is None:
            layout = space.layout
            watcher = DirWatcher([layout.queue, layout.scheduled, layout.events])
            watcher = self._root.watchers.setdefault(self._name, watcher)
            space.log.on_publish = functools.partial(watcher.bump, layout.events)
        if not watcher.running:
            with map_exceptions({OSError: StorageError}, f"file storage: watching {space.layout.dir}"):
                await asyncio.to_thread(watcher.start)
        return watcher

    async def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Run one operation on this namespace in a worker thread, mapping OS errors once."""
        space = await self._space()
        with map_exceptions({OSError: StorageError}, f"file storage {what}"):
            return await asyncio.to_thread(fn, space, *args)

    def _bump(self, *dirs: str) -> None:
        watcher = self._root.watchers.get(self._name)
        if watcher is not None:
            watcher.bump(*dirs)

    async def _sweep_forever(self) -> None:
        """Sweep the root at the next known deadline, and at least every ``cleanup_interval``."""
        root = self._root
        interval_ms = max(int(root.cleanup_interval * 1000), 1)
        while True:
            wait_ms = root.next_sweep_at - now_ms()
            if wait_ms > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout((wait_ms + 1) / 1000):
                        await root.wake.wait()
                root.wake.clear()
                continue  # woken by an earlier deadline, or the time has come: look again
            root.plan_sweep(now_ms() + interval_ms)  # deadlines noted during the sweep move it earlier
            # Shielded: a thread cannot be cancelled, and disconnect waits for it before closing its files.
            root.sweeping = asyncio.ensure_future(asyncio.to_thread(root_ops.sweep_all_namespaces, root))
            try:
                next_due = await asyncio.shield(root.sweeping)
            except Exception:  # the next round tries again; the calls that hit the same problem raise it
                _log.exception("file storage sweep failed at %s", root.path)
                continue
            if next_due is not None:
                root.note_deadline(next_due)

    # -------------------------------------------------------------------- queue

    async def _enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        outcomes = await self._call("enqueue", queue_ops.enqueue, list(jobs))
        accepted = [job for job, outcome in zip(jobs, outcomes, strict=True) if outcome.accepted]
        if accepted:
            layout = (await self._space()).layout
            self._bump(*{layout.scheduled if job.delay_ms > 0 else layout.queue for job in accepted})
        return outcomes

    async def _claim(self, worker_id: str, lease_ms: int, limit: int, timeout_ms: int) -> list[Claim]:
        space = await self._space()
        watcher = await self._watcher(space) if timeout_ms > 0 else None
        dirs = (space.layout.queue, space.layout.scheduled)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while True:
            since = watcher.snapshot(*dirs) if watcher is not None else ()
            claims, next_due = await self._call(
                "dequeue", queue_ops.promote_and_claim, worker_id, lease_ms, limit
            )
            remaining = deadline - loop.time()
            if claims or watcher is None or remaining <= 0 or self._root.refs <= 0:
                return claims
            wait = min(remaining, FALLBACK_POLL_SECONDS)
            if next_due is not None:
                wait = min(wait, max(next_due - now_ms() + 1, 0) / 1000)
            await watcher.wait(dirs, since, wait)
            space.refresh_listings()

    async def _finish(self, worker_id: str, outcomes: Sequence[Finish]) -> list[bool]:
        done = await self._call("finish", worker_ops.finish, worker_id, list(outcomes))
        if any(done):
            layout = (await self._space()).layout
            self._bump(layout.queue, layout.scheduled)
        return done

    async def _heartbeat(
        self, worker_id: str, ttl_ms: int | None, job_ids: Sequence[str], lease_ms: int, info: bytes
    ) -> dict[str, Revoked]:
        return await self._call(
            "heartbeat", worker_ops.heartbeat, worker_id, ttl_ms, list(job_ids), lease_ms, info
        )

    async def _unregister_worker(self, worker_id: str) -> None:
        await self._call("unregister_worker", worker_ops.unregister, worker_id)

    async def _set_progress(self, job_id: str, worker_id: str, data: bytes) -> bool:
        return await self._call("set_progress", worker_ops.set_progress, job_id, worker_id, data)

    async def _cancel(self, job_id: str, *, abort: bool) -> JobState | None:
        return await self._call("request_abort" if abort else "cancel", queue_ops.cancel, job_id, abort)

    async def _recover_stalled(self) -> Recovery:
        recovery = await self._call("recover_stalled", worker_ops.recover_stalled)
        if recovery.stalled:
            self._bump((await self._space()).layout.queue)
        return recovery

    # ---------------------------------------------------------------- job state

    async def _get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        return await self._call("get", queue_ops.get_many, list(job_ids))

    async def _update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        return await self._call("update_ttl", queue_ops.update_ttl, job_id, ttl_ms)

    # ------------------------------------------------------------ notifications

    def _subscribe(
        self, channels: frozenset[Channel]
    ) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        return self._subscription(channels)

    @asynccontextmanager
    async def _subscription(self, channels: frozenset[Channel]) -> AsyncIterator[AsyncIterator[StorageEvent]]:
        space = await self._space()
        watcher = await self._watcher(space)
        async with subscription(space, watcher, channels, lambda: self._root.refs > 0) as feed:
            yield feed

    # --------------------------------------------------------------- monitoring

    async def _counts(self) -> Mapping[JobState, int]:
        return await self._call("counts", monitor_ops.counts)

    async def _list_jobs(
        self, state: JobState | None, prefix: str, cursor: str | None, limit: int
    ) -> JobPage:
        return await self._call("list_jobs", monitor_ops.list_jobs, state, prefix, cursor, limit)

    async def _list_namespaces(self) -> Iterable[str]:
        await self._space()
        with map_exceptions({OSError: StorageError}, "file storage list_namespaces"):
            return await asyncio.to_thread(root_ops.namespaces_in_use, self._root)

    async def _list_workers(self) -> Iterable[WorkerRecord]:
        return await self._call("list_workers", monitor_ops.list_workers)

    async def _purge(self, states: frozenset[JobState]) -> int:
        return await self._call("purge", monitor_ops.purge, states)

    async def _retry_failed(self, job_id: str) -> bool:
        retried = await self._call("retry_failed", monitor_ops.retry_failed, job_id)
        if retried:
            self._bump((await self._space()).layout.queue)
        return retried

    # -------------------------------------------------------------- leader lock

    async def acquire_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take or renew ``key`` for ``owner`` (an OS file lock guards the owner and expiry inside)."""
        return await self._call("acquire_lock", root_ops.acquire_leader_lock, key, owner, ttl_ms)

    async def release_lock(self, key: str, owner: str) -> bool:
        """Release ``key`` if ``owner`` holds it; True when it was still live."""
        return await self._call("release_lock", root_ops.release_leader_lock, key, owner)
