"""Coalesce concurrent single-job enqueues into batch ``_enqueue`` calls."""

from __future__ import annotations

import asyncio

from ._contract import rules
from ._contract.records import EnqueueOutcome, NewJob
from ._contract.storage import Storage

__all__ = ["EnqueueCoalescer"]

_Pending = tuple[NewJob, "asyncio.Future[EnqueueOutcome]"]

# Storage calls in flight at once. With one, a busy producer alternates between building jobs
# and waiting for the one call that holds them all; with two, the storage writes one batch
# while the producer builds the next.
DEPTH = 2


class EnqueueCoalescer:
    """Sends one job at once when the storage is idle, else batches it with its peers.

    A job arriving while nothing is in flight goes out alone, straight from
    the caller, so a sequential producer pays no extra latency. Jobs
    arriving while a call is in flight are batched, in arrival order, and
    go out in at most ``DEPTH`` calls at once (up to ``rules.MAX_BATCH``
    jobs each). A call takes half of the jobs outstanding (in flight and
    waiting), so that the calls in flight stay of a size. A job whose id is
    in a call still in flight waits for that call to answer, so dedup
    answers as sequential calls in arrival order would, on any storage.
    Each call runs in a task of its own, which ends when nobody waits: a
    caller that is cancelled never cancels the jobs of the others.
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._calls = 0  # storage calls in flight, or about to be (a sender task started)
        self._flying: dict[str, int] = {}  # id -> how many jobs with that id are in flight
        self._waiting: list[_Pending] = []
        self._senders: set[asyncio.Task[None]] = set()
        self._drained: list[asyncio.Future[None]] = []  # stop() waiting for the last answer

    async def enqueue(self, job: NewJob) -> EnqueueOutcome:
        """Store one checked job (``Storage._enqueue`` semantics). Raises ``StorageError``."""
        if not self._calls and not self._waiting:
            self._calls += 1
            self._fly([job])
            try:
                # the protected primitive: the producer checked the job when it built it
                return (await self._storage._enqueue([job]))[0]
            finally:
                self._land([job])
                self._calls -= 1
                self._start_senders()
                self._wake_drain()
        future: asyncio.Future[EnqueueOutcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((job, future))
        self._start_senders()
        return await future

    async def drain(self) -> None:
        """Wait until every job handed over has its answer (on stop, before the storage goes)."""
        if self._calls or self._waiting:
            drained = asyncio.get_running_loop().create_future()
            self._drained.append(drained)
            await drained

    def _wake_drain(self) -> None:
        if not (self._calls or self._waiting):
            for drained in self._drained:
                if not drained.done():
                    drained.set_result(None)
            self._drained.clear()

    def _fly(self, jobs: list[NewJob]) -> None:
        flying = self._flying
        for job in jobs:
            flying[job.id] = flying.get(job.id, 0) + 1

    def _land(self, jobs: list[NewJob]) -> None:
        flying = self._flying
        for job in jobs:
            left = flying[job.id] - 1
            if left:
                flying[job.id] = left
            else:
                del flying[job.id]

    def _start_senders(self) -> None:
        # one sender per free call slot; a started sender picks its jobs when it first runs,
        # once the burst that woke it has joined the waiting list. A first job whose id is in
        # flight waits for that call, which starts senders again when it lands.
        waiting = self._waiting
        while waiting and self._calls < DEPTH and waiting[0][0].id not in self._flying:
            self._calls += 1
            task = asyncio.get_running_loop().create_task(self._send(), name="jobqueue-enqueue")
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)

    def _take(self) -> list[_Pending]:
        """The next batch: half of the jobs outstanding, up to the first id still in flight."""
        waiting, flying = self._waiting, self._flying
        in_flight = sum(flying.values())
        size = min(rules.MAX_BATCH, len(waiting), max(1, (in_flight + len(waiting) + 1) // 2))
        batch = waiting[:size]
        for i, (job, _) in enumerate(batch):
            if job.id in flying:
                del batch[i:]
                break
        del waiting[: len(batch)]
        return batch

    async def _send(self) -> None:
        try:
            while batch := self._take():
                jobs = [job for job, _ in batch]
                self._fly(jobs)
                try:
                    outcomes = await self._storage._enqueue(jobs)
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
                    self._land(jobs)
                    self._start_senders()  # a job held back for an id in this batch may go now
        except BaseException:
            for _, future in self._waiting:  # the loop is shutting down
                future.cancel()
            self._waiting.clear()
            raise
        finally:
            self._calls -= 1
            self._start_senders()
            self._wake_drain()
