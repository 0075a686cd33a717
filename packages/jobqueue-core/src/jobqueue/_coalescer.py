"""Coalesce concurrent single-job enqueues into batch ``_enqueue`` calls."""

from __future__ import annotations

import asyncio

from ._contract import rules
from ._contract.records import EnqueueOutcome, NewJob
from ._contract.storage import Storage

__all__ = ["EnqueueCoalescer"]

_Pending = tuple[NewJob, "asyncio.Future[EnqueueOutcome]"]


class EnqueueCoalescer:
    """Sends one job at once when the storage is idle, else batches it with its peers.

    A job arriving while nothing is in flight goes out alone, straight from
    the caller, so a sequential producer pays no extra latency. Jobs
    arriving while a call is in flight wait for it and then go out together
    in one ``_enqueue`` call (up to ``rules.MAX_BATCH`` each), in arrival
    order, so dedup within a batch answers as sequential calls would. That
    send runs in a task of its own, which ends when nobody waits: a caller
    that is cancelled never cancels the jobs of the others.
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._busy = False
        self._waiting: list[_Pending] = []
        self._sender: asyncio.Task[None] | None = None
        self._drained: list[asyncio.Future[None]] = []  # stop() waiting for the last answer

    async def enqueue(self, job: NewJob) -> EnqueueOutcome:
        """Store one checked job (``Storage._enqueue`` semantics). Raises ``StorageError``."""
        if not self._busy and not self._waiting:
            self._busy = True
            try:
                # the protected primitive: the producer checked the job when it built it
                return (await self._storage._enqueue([job]))[0]
            finally:
                self._busy = False
                self._start_sender()
                self._wake_drain()
        future: asyncio.Future[EnqueueOutcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, future))
        self._start_sender()
        return await future

    async def drain(self) -> None:
        """Wait until every job handed over has its answer (on stop, before the storage goes)."""
        if self._busy or self._waiting or self._sender is not None:
            drained = asyncio.get_running_loop().create_future()
            self._drained.append(drained)
            await drained

    def _wake_drain(self) -> None:
        if not (self._busy or self._waiting or self._sender is not None):
            for drained in self._drained:
                if not drained.done():
                    drained.set_result(None)
            self._drained.clear()

    def _start_sender(self) -> None:
        if self._waiting and not self._busy and self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send(), name="jobqueue-enqueue")

    async def _send(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: rules.MAX_BATCH]
                del self._waiting[: rules.MAX_BATCH]
                self._busy = True
                try:
                    outcomes = await self._storage._enqueue([job for job, _ in batch])
                    for (_, future), outcome in zip(batch, outcomes, strict=True):
                        if not future.done():
                            future.set_result(outcome)
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                except BaseException:
                    for _, future in batch:
                        future.cancel()
                    raise
                finally:
                    self._busy = False
        finally:
            self._sender = None
            for _, future in self._waiting:  # only when cancelled: the loop is shutting down
                future.cancel()
            self._waiting.clear()
            self._wake_drain()
