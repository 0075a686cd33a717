"""One ``done`` subscription per queue, shared by every ``enqueue_and_wait`` caller."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Sequence

from ._contract.events import EventBuffer
from ._contract.records import Channel, EventKind, JobRecord, StorageEvent
from ._contract.storage import Storage
from ._durations import now_ms
from ._errors import JobQueueError
from ._tasks import cancel_and_wait

__all__ = ["Outcome", "Waiters"]

Outcome = StorageEvent | JobRecord | None
"""How a wait ends: the ``done`` event, the terminal record found by a re-check, or None
when a re-check found no record (cancelled, or finished and expired, with the event lost)."""

_RECHECK_INTERVAL = 5.0  # seconds; the fallback when pub/sub drops an event
_TERMINAL = frozenset({EventKind.COMPLETED, EventKind.FAILED, EventKind.CANCELLED})


class Waiters:
    """Dispatches terminal events to the futures of callers waiting on those job ids.

    Pub/sub is best effort, so every waited job is re-read after each
    (re)subscription and every few seconds whatever the traffic: a lost event
    delays a caller, never strands it.
    """

    def __init__(self, storage: Storage, logger: logging.Logger) -> None:
        self._storage = storage
        self._logger = logger
        self._futures: dict[str, list[asyncio.Future[Outcome]]] = {}
        self._armed: set[str] = set()  # ids whose enqueue has returned: a missing record means gone
        self._since: dict[str, int] = {}  # first registration time per id, to spot stale events
        self._task: asyncio.Task[None] | None = None
        self._recheck_task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Subscribe (once) and return when events published from now on will be seen."""
        if self._task is None or self._task.done():  # first use, or the first subscribe failed
            loop = asyncio.get_running_loop()
            self._ready = loop.create_future()
            self._task = asyncio.create_task(self._listen(), name="jobqueue-waiters")
            if self._recheck_task is None:
                self._recheck_task = asyncio.create_task(
                    self._recheck_periodically(), name="jobqueue-waiters-recheck"
                )
        assert self._ready is not None
        await asyncio.shield(self._ready)

    async def stop(self) -> None:
        """Stop listening; pending waits fail with ``JobQueueError``."""
        tasks = (self._task, self._recheck_task)
        self._task = self._recheck_task = None
        await cancel_and_wait(*tasks)
        for futures in self._futures.values():
            for future in futures:
                if not future.done():
                    future.set_exception(JobQueueError("queue stopped while waiting for the job"))
        self._futures.clear()
        self._armed.clear()
        self._since.clear()

    def register(self, job_id: str) -> asyncio.Future[Outcome]:
        """A future resolved with the job's terminal outcome."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._futures.setdefault(job_id, []).append(future)
        self._since.setdefault(job_id, now_ms())
        return future

    def arm(self, job_id: str) -> None:
        """Mark that the job exists in storage, so a re-check that finds no record resolves as cancelled."""
        if job_id in self._futures:
            self._armed.add(job_id)

    def unregister(self, job_id: str, future: asyncio.Future[Outcome]) -> None:
        """Forget a future (after it resolved or its caller gave up)."""
        futures = self._futures.get(job_id)
        if futures and future in futures:
            futures.remove(future)
            if not futures:
                del self._futures[job_id]
                self._armed.discard(job_id)
                self._since.pop(job_id, None)

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                async with self._storage.subscribe(Channel.DONE) as events:
                    if isinstance(events, EventBuffer):
                        events.intercept(self._take)  # resolved in the storage's reader: no turn here
                    if self._ready is not None and not self._ready.done():
                        self._ready.set_result(None)
                    failures = 0
                    await self._recheck()
                    await self._pump(events)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if self._ready is not None and not self._ready.done():
                    self._ready.set_exception(exc)
                    return
                self._logger.warning("waiters: subscription lost (%s); resubscribing", exc)
                await asyncio.sleep(min(0.05 * 2**failures, 2.0) * random.uniform(0.5, 1.0))

    async def _pump(self, events: AsyncIterator[StorageEvent]) -> None:
        async for event in events:
            if self._take(event):
                continue
            # An event older than the wait may be about an earlier job with this id (or a
            # skewed clock): the record decides.
            record = await self._storage.get(event.job_id)
            if record is not None and record.state.is_terminal:
                self._resolve(event.job_id, record)

    def _take(self, event: StorageEvent) -> bool:
        """Handle an event that needs no re-read (most): resolve its waiters or ignore it."""
        if event.kind not in _TERMINAL:
            return True
        since = self._since.get(event.job_id)
        if since is None:
            return True
        if event.at >= since:
            self._resolve(event.job_id, event)
            return True
        return False

    async def _recheck_periodically(self) -> None:
        # Independent of traffic: a lost event must not wait for a quiet moment to be noticed.
        while True:
            await asyncio.sleep(_RECHECK_INTERVAL)
            try:
                await self._recheck()
            except Exception as exc:
                self._logger.warning("waiters: re-check of waited jobs failed (%s)", exc)

    async def _recheck(self) -> None:
        ids = [job_id for job_id in self._futures if job_id in self._armed]
        if not ids:
            return
        records: Sequence[JobRecord | None] = await self._storage.get_many(ids)
        for job_id, record in zip(ids, records, strict=True):
            if record is None:
                self._resolve(job_id, None)
            elif record.state.is_terminal:
                self._resolve(job_id, record)

    def _resolve(self, job_id: str, outcome: Outcome) -> None:
        self._armed.discard(job_id)
        self._since.pop(job_id, None)
        for future in self._futures.pop(job_id, []):
            if not future.done():
                future.set_result(outcome)
