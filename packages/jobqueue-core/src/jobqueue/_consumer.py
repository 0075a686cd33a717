"""The consuming half of a ``Queue``: claim jobs, run them, keep their leases, stop gracefully."""

from __future__ import annotations

import asyncio
import inspect
import random
from typing import Any

from ._attempt import Attempt, Handler, StopReason
from ._config import QueueConfig
from ._contract.capabilities import ControlChannel
from ._contract.records import Channel, EventKind, Revoked
from ._contract.storage import Storage
from ._emitter import Emitter
from ._errors import StorageError
from ._finisher import Finisher
from ._schedule import Scheduler
from ._schedule_info import encode_worker_info
from ._tasks import cancel_and_wait

__all__ = ["Consumer"]


class Consumer:
    """Runs up to ``concurrency`` jobs at once for one worker id. Owned by ``Queue``.

    Background tasks: the fetch loop (blocking dequeue of as many jobs as
    there are free slots), the lease loop (one heartbeat call: worker
    registration, with the schedules it runs, and lease renewal of running
    jobs, every third of the visibility timeout) and, on storages with a
    control channel, the control loop (abort requests). Each survives a
    failing storage call by backing off and retrying: a ``StorageError`` (an
    outage) and any other exception (a storage bug, or a driver error it did
    not translate) alike, reported once per streak of failures in the log
    and as an ``error`` event.
    """

    def __init__(
        self,
        storage: Storage,
        config: QueueConfig,
        emitter: Emitter,
        handler: Handler,
        scheduler: Scheduler | None = None,
    ) -> None:
        self._storage = storage
        self._scheduler = scheduler
        self._scheduler_task: asyncio.Task[None] | None = None
        self._config = config
        self._emitter = emitter
        self._handler = handler
        self._is_async = inspect.iscoroutinefunction(handler)
        self._running: dict[str, Attempt[Any, Any]] = {}
        self._slot_free = asyncio.Event()
        self._slot_free.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._finisher = Finisher(storage, config.worker_id)

    @property
    def running_ids(self) -> list[str]:
        """Ids of the jobs this worker is running now."""
        return list(self._running)

    async def start(self) -> None:
        """Register the worker and start the background loops."""
        await self._storage.register_worker(self._config.worker_id, self._heartbeat_ttl_ms, self._info())
        self._tasks = [
            asyncio.create_task(self._fetch_loop(), name="jobqueue-fetch"),
            asyncio.create_task(self._lease_loop(), name="jobqueue-lease"),
        ]
        if isinstance(self._storage, ControlChannel):  # else aborts arrive with the next heartbeat
            self._tasks.append(asyncio.create_task(self._control_loop(), name="jobqueue-control"))
        if self._scheduler is not None:
            self._scheduler_task = asyncio.create_task(self._scheduler.run(), name="jobqueue-scheduler")

    async def stop(self, drain_timeout: float) -> None:
        """Stop claiming, let running jobs finish for ``drain_timeout`` seconds, then give them back."""
        fetch, *others = self._tasks
        self._stopping = True  # ends the fetch loop even if a backend swallowed the cancellation
        if self._scheduler_task is not None:
            await cancel_and_wait(self._scheduler_task)  # a stopping worker enqueues no more ticks
            self._scheduler_task = None
        await cancel_and_wait(fetch)
        tasks = [attempt.task for attempt in self._running.values() if attempt.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=drain_timeout)
        for attempt in list(self._running.values()):
            attempt.interrupt(StopReason.SHUTDOWN)
        tasks = [attempt.task for attempt in self._running.values() if attempt.task is not None]
        if tasks:
            # a sync handler's thread cannot be killed; its attempt is released without waiting for it
            await asyncio.wait(tasks, timeout=max(1.0, self._config.visibility_timeout_ms / 1000))
        await cancel_and_wait(*others)
        self._tasks = []
        try:
            await self._storage.unregister_worker(self._config.worker_id)
        except StorageError as exc:
            self._config.logger.warning("could not unregister worker %s: %s", self._config.worker_id, exc)

    @property
    def _heartbeat_ttl_ms(self) -> int:
        return self._config.visibility_timeout_ms

    def _info(self) -> bytes:
        # registered with every heartbeat, so dashboards list the schedules this worker runs
        if self._scheduler is None:
            return b""
        return encode_worker_info(self._scheduler.schedules, self._scheduler.last_ticks)

    async def _fetch_loop(self) -> None:
        config = self._config
        failures = 0
        while not self._stopping:
            await self._slot_free.wait()
            free = config.concurrency - len(self._running)
            if free <= 0:
                # the attempt that set the flag had been replaced in _running by a new claim of the
                # same job (re-delivered here after its lease expired): no slot is free after all
                self._slot_free.clear()
                continue
            try:
                claims = await self._storage.dequeue(
                    config.worker_id,
                    lease_ms=config.visibility_timeout_ms,
                    timeout_ms=config.block_timeout_ms,
                    limit=free,
                )
            except Exception as exc:  # an unexpected one too: a dead fetch loop would claim nothing, silently
                failures += 1
                await self._report_outage("dequeue", exc, failures)
                continue
            failures = 0
            for claim in claims:
                attempt: Attempt[Any, Any] = Attempt(
                    claim, self._storage, self._finisher, config, self._emitter, self._handler, self._is_async
                )
                attempt.task = asyncio.create_task(self._run(attempt), name=f"jobqueue-job-{claim.id}")
                self._running[claim.id] = attempt
            if len(self._running) >= config.concurrency:
                self._slot_free.clear()

    async def _run(self, attempt: Attempt[Any, Any]) -> None:
        """An attempt's task: run it, then free its slot (in the task: no done callback per job)."""
        job_id = attempt.claim.id
        try:
            await attempt.run()
        except Exception as exc:  # run() stores every failure; this is a bug, reported, not fatal
            self._config.logger.error("job %r: unexpected error in the worker: %r", job_id, exc)
            self._emitter.emit("error", exc)
        finally:
            if self._running.get(job_id) is attempt:
                del self._running[job_id]
            self._slot_free.set()

    async def _lease_loop(self) -> None:
        config = self._config
        interval = config.visibility_timeout_ms / 3000
        failures = 0
        while True:
            await asyncio.sleep(interval)
            try:
                revoked = await self._storage.heartbeat(
                    config.worker_id,
                    ttl_ms=self._heartbeat_ttl_ms,
                    job_ids=list(self._running),
                    lease_ms=config.visibility_timeout_ms,
                    info=self._info(),
                )
                for job_id, reason in revoked.items():
                    running = self._running.get(job_id)
                    if running is not None:
                        running.interrupt(StopReason.ABORT if reason is Revoked.ABORTED else StopReason.LOST)
                failures = 0
            except Exception as exc:  # an unexpected one too: a dead lease loop would let every job stall
                failures += 1
                await self._report_outage("heartbeat", exc, failures)

    async def _control_loop(self) -> None:
        failures = 0
        while True:
            try:
                async with self._storage.subscribe(Channel.CONTROL) as events:
                    failures = 0
                    async for event in events:
                        running = self._running.get(event.job_id)
                        if event.kind is EventKind.ABORT and running is not None:
                            running.interrupt(StopReason.ABORT)
            except Exception as exc:  # an unexpected one too: aborts then wait for the next heartbeat
                failures += 1
                await self._report_outage("control subscription", exc, failures)

    async def _report_outage(self, what: str, exc: Exception, failures: int) -> None:
        if failures == 1:
            if isinstance(exc, StorageError):
                self._config.logger.warning("%s failed (%s); retrying", what, exc)
            else:  # not an outage the storage recognised: the traceback is what finds the bug
                self._config.logger.error(
                    "%s raised an unexpected %s; retrying", what, type(exc).__name__, exc_info=exc
                )
            self._emitter.emit("error", exc)
        await asyncio.sleep(min(0.05 * 2**failures, 5.0) * random.uniform(0.5, 1.0))
