"""``FileStorage``: the storage contract on a directory, shared by any number of processes on one host.

Invariants (what survives ``kill -9`` at any instant):

1. A job's *record* (``jobs/<key>``) is the truth. It is only ever replaced
   whole (temp file, fsync, rename), so it is either the old or the new one.
2. A live job that is queued, scheduled or processing has exactly one *entry*
   file, in ``queue/``, ``scheduled/`` or ``processing/<worker>/``; entries
   are moved by ``rename`` (atomic), never copied. A finished job has none.
3. Every change of a job happens under its job lock (``flock``, released by
   the kernel when a process dies), so a lock holder only ever finds a state
   that is consistent or left half-done by a dead process.
4. The order of the two steps of a move makes every half-done state
   repairable from the record alone: a new job's entry is created before its
   record (an entry without a record is dropped); an entry moves *into*
   ``processing/`` before its record says so, and the record says a job
   *left* ``processing/`` before its entry moves out. So a record that says
   "processing" always has its entry in ``processing/``, and whatever an
   entry disagrees with, it is moved to where its record says (``settle``):
   on sight when claiming, at ``connect()`` and in ``recover_stalled()``.
   Entries carry a per-incarnation ``uid``, so a stale entry is never
   mistaken for a newer job with the same id.
5. Temp files (``.tmp-<pid>-...``) of dead processes are removed at
   ``connect()`` and by the cleaner.

Every disk operation runs in a worker thread (``asyncio.to_thread``). A
blocked ``dequeue`` or a subscriber waits on inotify (``_watch``), with a
slow poll (``FALLBACK_POLL_SECONDS``) as a safety net. Expired records are
invisible at once and deleted by a cleaner task that only the process holding
the root's leader lock runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import math
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Self, TypeVar

from jobqueue import (
    DEFAULT_NAMESPACE,
    Channel,
    Claim,
    EnqueueOutcome,
    JobPage,
    JobRecord,
    JobState,
    LeaderLock,
    Stalled,
    Storage,
    StorageError,
    StorageEvent,
    WorkerRecord,
    map_exceptions,
    now_ms,
    validate_job_id,
)
from jobqueue._storage import TtlOutcome

from . import _root as threaded
from ._admin import Space
from ._feed import FALLBACK_POLL_SECONDS, subscription
from ._root import Root, parse_url
from ._watch import DirWatcher

__all__ = ["FileStorage"]

_log = logging.getLogger("jobqueue.file")

T = TypeVar("T")


class FileStorage(Storage, LeaderLock):
    """Jobs kept as files under a directory: durable, crash-safe, shared by the processes of one host.

    Args:
        path: the root directory (created when missing); each namespace is a
            directory under it.
        name: the namespace of this view.
        durable: fsync every write (default). ``False`` keeps every write
            atomic, so a crash of the process loses nothing, but a power loss
            may lose the last writes.
        cleanup_interval: seconds between two sweeps of expired records by the
            cleaner (which runs in one process only).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        name: str = DEFAULT_NAMESPACE,
        *,
        durable: bool = True,
        cleanup_interval: float = 10.0,
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
        self._root = Root(os.path.abspath(root), durable, float(cleanup_interval))
        self._name = name

    @classmethod
    def from_url(cls, url: str) -> FileStorage:
        """Build a storage from ``file:///var/lib/app/queue?durable=false``.

        Raises:
            TypeError: ``url`` is not a string.
            ValueError: not a ``file://`` URL, a host other than ``localhost``,
                no path, or an unknown option or value.
        """
        path, name, durable = parse_url(url)
        return cls(path, name, durable=durable)

    def __repr__(self) -> str:
        return f"FileStorage({self._root.path!r}, namespace={self._name!r}, durable={self._root.durable})"

    @property
    def path(self) -> str:
        """The root directory."""
        return self._root.path

    # ---------------------------------------------------------------- lifecycle

    @property
    def name(self) -> str:
        """The namespace this instance is bound to."""
        return self._name

    def namespace(self, name: str) -> Self:
        """Return a view on namespace ``name`` sharing this storage's root and connections."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"namespace name must be a non-empty str, got {name!r}")
        view = copy.copy(self)
        view._name = name
        return view

    async def connect(self) -> None:
        """Create the directories, repair what a crash left half-done, start the cleaner."""
        root = self._root
        async with root.guard:
            root.refs += 1
            try:
                await self._space()
            except BaseException:
                root.refs -= 1
                raise
            if root.cleaner is None:
                root.cleaner = asyncio.create_task(self._clean_forever(), name="jobqueue-file-cleaner")

    async def disconnect(self) -> None:
        """Release one ``connect``; the last one stops the watchers and the cleaner."""
        root = self._root
        async with root.guard:
            if root.refs <= 0:
                return
            root.refs -= 1
            if root.refs > 0:
                return
            cleaner, root.cleaner = root.cleaner, None
            if cleaner is not None:
                cleaner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await cleaner
            watchers = list(root.watchers.values())
            spaces = list(root.spaces.values())
            root.watchers.clear()
            root.spaces.clear()
            await asyncio.to_thread(threaded.close_all, root, watchers, spaces)

    async def _space(self) -> Space:
        root = self._root
        if root.refs <= 0:
            raise StorageError(f"file storage at {root.path} is not connected; call connect()")
        space = root.spaces.get(self._name)
        if space is None:
            with map_exceptions({OSError: StorageError}, f"file storage: opening {root.path}"):
                space = await asyncio.to_thread(root.open_space, self._name)
            kept = root.spaces.setdefault(self._name, space)
            if kept is not space:  # opened twice concurrently: keep one
                space.close()
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

    async def _clean_forever(self) -> None:
        root = self._root
        while True:
            await asyncio.sleep(root.cleanup_interval)
            try:
                await asyncio.to_thread(threaded.sweep_root, root)
            except Exception:  # the next round tries again; the calls that hit the same problem raise it
                _log.exception("file storage cleaner failed at %s", root.path)

    # -------------------------------------------------------------------- queue

    async def enqueue(self, job_id: str, message: bytes, *, delay_ms: int = 0) -> EnqueueOutcome:
        """Store a new job unless a live one has this id, atomically across processes."""
        validate_job_id(job_id)
        if not isinstance(message, bytes):
            raise TypeError(f"message must be bytes, not {type(message).__name__}")
        accepted, existing = await self._call("enqueue", Space.enqueue, job_id, message, max(delay_ms, 0))
        if accepted:
            space = await self._space()
            self._bump(space.layout.scheduled if delay_ms > 0 else space.layout.queue)
        return EnqueueOutcome(accepted, existing.public() if existing is not None else None)

    async def dequeue(self, worker_id: str, *, lease_ms: int, timeout_ms: int, limit: int = 1) -> list[Claim]:
        """Claim up to ``limit`` ready jobs, waiting up to ``timeout_ms`` (on inotify) for one."""
        if not isinstance(worker_id, str) or not worker_id:
            raise ValueError(f"worker_id must be a non-empty str, got {worker_id!r}")
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        space = await self._space()
        watcher = await self._watcher(space) if timeout_ms > 0 else None
        dirs = (space.layout.queue, space.layout.scheduled)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_ms, 0) / 1000
        while True:
            since = watcher.snapshot(*dirs) if watcher is not None else ()
            claims, next_due = await self._call("dequeue", threaded.take, worker_id, lease_ms, limit)
            remaining = deadline - loop.time()
            if claims or watcher is None or remaining <= 0 or self._root.refs <= 0:
                return claims
            wait = min(remaining, FALLBACK_POLL_SECONDS)
            if next_due is not None:
                wait = min(wait, max(next_due - now_ms() + 1, 0) / 1000)
            await watcher.wait(dirs, since, wait)
            space.refresh_listings()

    async def renew_leases(self, worker_id: str, job_ids: Sequence[str], lease_ms: int) -> list[str]:
        """Extend the leases of the worker's running jobs; return the ids it must stop."""
        return await self._call("renew_leases", Space.renew, worker_id, list(job_ids), lease_ms)

    async def release(self, job_id: str, worker_id: str) -> bool:
        """Give a claimed job back to the head of the queue, its attempt not counted."""
        released = await self._call("release", Space.release, job_id, worker_id)
        if released:
            self._bump((await self._space()).layout.queue)
        return released

    async def complete(self, job_id: str, worker_id: str, result: bytes, ttl_ms: int) -> bool:
        """Store the result and set ``completed`` when the worker still owns the job."""
        return await self._call(
            "complete", Space.finish, job_id, worker_id, JobState.COMPLETED, result, ttl_ms
        )

    async def fail(self, job_id: str, worker_id: str, error: bytes, ttl_ms: int) -> bool:
        """Store the error and set ``failed`` when the worker still owns the job."""
        return await self._call("fail", Space.finish, job_id, worker_id, JobState.FAILED, error, ttl_ms)

    async def retry(self, job_id: str, worker_id: str, error: bytes, delay_ms: int) -> bool:
        """Store the error, set ``failing`` and schedule the job ``delay_ms`` from now."""
        retried = await self._call("retry", Space.retry, job_id, worker_id, error, delay_ms)
        if retried:
            self._bump((await self._space()).layout.scheduled)
        return retried

    async def cancel(self, job_id: str) -> JobState | None:
        """Cancel a job that has not started (and clear a failed one); return the state it had."""
        return await self._call("cancel", Space.cancel, job_id)

    async def request_abort(self, job_id: str) -> JobState | None:
        """Cancel a job that has not started, or flag a processing one; return the state it had."""
        return await self._call("request_abort", threaded.abort, job_id)

    async def recover_stalled(self) -> list[Stalled]:
        """Requeue every job whose lease expired, at the head; repair half-done moves."""
        stalled = await self._call("recover_stalled", Space.recover_stalled)
        if stalled:
            self._bump((await self._space()).layout.queue)
        return stalled

    async def next_lease_expiry(self) -> int | None:
        """Milliseconds until the earliest lease expires (None: no job is processing)."""
        return await self._call("next_lease_expiry", Space.next_lease_expiry)

    # ---------------------------------------------------------------- job state

    async def get(self, job_id: str) -> JobRecord | None:
        """The live record of a job, or None."""
        record = await self._call("get", Space.get, job_id)
        return record.public() if record is not None else None

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """``get`` for many ids, in the order given, in one worker-thread call."""
        records = await self._call("get_many", threaded.get_many, list(job_ids))
        return [record.public() if record is not None else None for record in records]

    async def delete(self, job_id: str) -> bool:
        """Remove every trace of a job that is not processing."""
        return await self._call("delete", Space.delete, job_id)

    async def update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        """Make a terminal record expire ``ttl_ms`` from now."""
        return await self._call("update_ttl", Space.update_ttl, job_id, ttl_ms)

    # ------------------------------------------------------------------ workers

    async def register_worker(self, worker_id: str, ttl_ms: int) -> None:
        """Register a worker or refresh its heartbeat for ``ttl_ms``."""
        await self._call("register_worker", Space.register_worker, worker_id, ttl_ms)

    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker's registration; jobs it holds stay recoverable."""
        await self._call("unregister_worker", Space.unregister_worker, worker_id)

    async def list_workers(self) -> list[WorkerRecord]:
        """Registered workers, and lapsed ones that still hold jobs, by id."""
        return await self._call("list_workers", Space.list_workers)

    # ------------------------------------------------------------ notifications

    def subscribe(self, *channels: Channel) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        """Tail the namespace's event log from now on, keeping the events of ``channels``."""
        if not channels:
            raise ValueError("subscribe needs at least one channel")
        return self._subscription(frozenset(Channel(channel) for channel in channels))

    @asynccontextmanager
    async def _subscription(self, channels: frozenset[Channel]) -> AsyncIterator[AsyncIterator[StorageEvent]]:
        space = await self._space()
        watcher = await self._watcher(space)
        async with subscription(space, watcher, channels, lambda: self._root.refs > 0) as feed:
            yield feed

    # --------------------------------------------------------------- monitoring

    async def counts(self) -> dict[JobState, int]:
        """Number of live jobs per state (every state present)."""
        return await self._call("counts", Space.counts)

    async def list_jobs(
        self,
        *,
        state: JobState | None = None,
        prefix: str = "",
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        """Page through live jobs, newest first, filtered by state and id prefix."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        wanted = JobState(state) if state is not None else None
        return await self._call("list_jobs", Space.list_jobs, wanted, prefix, cursor, limit)

    async def list_namespaces(self) -> list[str]:
        """Namespaces under the root that hold jobs or workers."""
        await self._space()
        with map_exceptions({OSError: StorageError}, "file storage list_namespaces"):
            return await asyncio.to_thread(threaded.namespaces, self._root)

    async def retry_failed(self, job_id: str) -> bool:
        """Queue a failed job again with its attempts reset."""
        retried = await self._call("retry_failed", Space.retry_failed, job_id)
        if retried:
            self._bump((await self._space()).layout.queue)
        return retried

    async def purge(self, states: Sequence[JobState]) -> int:
        """Delete every job in the given terminal states; return how many."""
        wanted = [JobState(value) for value in states]
        if not_terminal := sorted(value for value in wanted if not value.is_terminal):
            raise ValueError(f"purge only deletes terminal states (completed, failed), got {not_terminal}")
        return await self._call("purge", Space.purge, wanted)

    # -------------------------------------------------------------- leader lock

    async def acquire_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take or renew ``key`` for ``owner`` (an OS file lock guards the owner and expiry inside)."""
        return await self._call("acquire_lock", threaded.acquire, key, owner, ttl_ms)

    async def release_lock(self, key: str, owner: str) -> bool:
        """Release ``key`` if ``owner`` holds it; True when it was still live."""
        return await self._call("release_lock", threaded.release, key, owner)
