"""The processes of a chaos run: ``python tools/chaos_roles.py ROLE RUN_DIR INDEX``.

ROLE is ``producer``, ``worker`` or ``reaper``. Each reads ``RUN_DIR/config.json``,
writes its own append-only records (see ``chaos_config.RunFiles``) and stops
gracefully on SIGTERM. The supervisor kills them with SIGKILL or freezes them
with SIGSTOP whenever it likes: nothing here assumes a clean end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tools.*

from jobqueue import (
    Job,
    JobCancelledError,
    JobNotFoundError,
    JobQueueError,
    JobTimeoutError,
    LeaderElection,
    Queue,
    Reaper,
)

from tools.chaos_config import ChaosConfig, RunFiles, append_line, make_storage

__all__ = ["main"]

PID = os.getpid()


def _now() -> str:
    return f"{time.time():.6f}"


async def _start(start: Callable[[], Awaitable[None]], role: str) -> None:
    """Start, retrying while the storage is unreachable, as a process manager would restart us.

    A replacement can start while the server is down (a restart fault); ``start()``
    then fails fast with a ``StorageError``.
    """
    delay = 0.1
    while True:
        try:
            await start()
            return
        except JobQueueError as exc:
            logging.getLogger("chaos").warning("%s could not start (%s); retrying", role, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_worker(config: ChaosConfig, files: RunFiles) -> None:
    """Run jobs: log each execution to the ledger, sleep as the payload says, return the id."""
    queue: Queue[dict[str, object], dict[str, object]] = Queue(
        make_storage(config),
        concurrency=config.worker_concurrency,
        visibility_timeout=config.visibility_timeout,
        block_timeout=config.block_timeout,
        max_attempts=config.max_attempts,
        result_ttl=config.result_ttl,
        retry_backoff=0.1,
    )

    @queue.execute
    async def handle(job: Job[dict[str, object]]) -> dict[str, object]:
        sleep = job.payload.get("sleep")
        seconds = float(sleep) if isinstance(sleep, int | float) else random.uniform(*config.handler_sleep)
        append_line(files.ledger, f"{job.id} {PID} {job.attempt} {_now()} {seconds:.3f}")
        await asyncio.sleep(seconds)  # long ones outlive several leases: renewal must keep them
        return {"id": job.id}

    queue.on("completed", lambda job_id, _result: append_line(files.completions, f"{job_id} {PID} {_now()}"))
    stop = _stop_event()
    await _start(queue.start, "worker")
    try:
        await stop.wait()
    finally:
        await queue.stop()


async def run_reaper(config: ChaosConfig, files: RunFiles) -> None:
    """Run a reaper with leader election; log leadership changes and stalled jobs."""
    election = LeaderElection(
        lock_ttl=config.lock_ttl, renew_interval=config.lock_renew, retry_interval=config.lock_retry
    )
    reaper = Reaper(
        make_storage(config),
        visibility_timeout=config.visibility_timeout,
        leader_election=election,
    )
    log = files.reaper_events
    reaper.on("leadership_acquired", lambda: append_line(log, f"{_now()} {PID} leader"))
    reaper.on("leadership_lost", lambda: append_line(log, f"{_now()} {PID} lost"))
    reaper.on("stalled", lambda job_id, worker: append_line(log, f"{_now()} {PID} stalled {job_id}"))
    stop = _stop_event()
    await _start(reaper.start, "reaper")
    try:
        await stop.wait()
    finally:
        await reaper.stop()


class Producer:
    """Sends unique ids, mixing ``enqueue`` and ``enqueue_and_wait``; records every outcome."""

    def __init__(self, config: ChaosConfig, files: RunFiles, index: int) -> None:
        self.config = config
        self.path = files.producer(index)
        self.index = index
        self.queue: Queue[dict[str, object], dict[str, object]] = Queue(
            make_storage(config), max_attempts=config.max_attempts, result_ttl=config.result_ttl
        )
        self.waits: set[asyncio.Task[None]] = set()

    def payload(self, rng: random.Random) -> dict[str, object]:
        """A payload: the producer index and how long the handler runs."""
        config = self.config
        span = config.long_sleep if rng.random() < config.long_share else config.handler_sleep
        return {"p": self.index, "sleep": round(rng.uniform(*span), 3)}

    def record(self, *fields: str) -> None:
        append_line(self.path, " ".join((*fields, _now())))

    async def accept(self, job_id: str, payload: dict[str, object]) -> None:
        """Enqueue until the storage answers; dedup makes a retry after an unclear failure safe."""
        delay = 0.05
        deadline = time.monotonic() + self.config.wait_timeout * 3
        while True:
            try:
                result = await self.queue.enqueue(job_id, payload)
            except JobQueueError as exc:
                if time.monotonic() > deadline:
                    self.record("X", job_id, type(exc).__name__)  # given up: never accepted
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            self.record("A", job_id, f"enqueue:{result.status}")
            return

    async def wait_one(self, job_id: str, payload: dict[str, object]) -> None:
        self.record("W+", job_id)
        try:
            value = await self.queue.enqueue_and_wait(job_id, payload, timeout=self.config.wait_timeout)
        except (
            JobTimeoutError,
            JobCancelledError,
            JobNotFoundError,
        ) as exc:  # only after the job was enqueued
            self.record("A", job_id, "wait")
            self.record("W-", job_id, type(exc).__name__)
            return
        except JobQueueError as exc:
            self.record("W-", job_id, type(exc).__name__)
        except Exception as exc:  # not a library error: the check counts it
            self.record("W-", job_id, f"foreign:{type(exc).__name__}")
        else:
            self.record("A", job_id, "wait")
            self.record("W-", job_id, "ok" if value == {"id": job_id} else "wrong-result")
            return
        await self.accept(job_id, payload)  # the call failed before or after enqueue: make sure it is in

    async def run(self) -> None:
        config = self.config
        stop = _stop_event()
        rng = random.Random(config.seed * 1000 + self.index)
        await _start(self.queue.start, "producer")
        try:
            await self._produce(stop, rng)
        finally:
            await self.queue.stop()

    async def _produce(self, stop: asyncio.Event, rng: random.Random) -> None:
        config = self.config
        number = 0
        while not stop.is_set():
            job_id = f"p{self.index}-{number:07d}"
            number += 1
            payload = self.payload(rng)
            if rng.random() < config.wait_share and len(self.waits) < config.max_waits:
                task = asyncio.create_task(self.wait_one(job_id, payload))
                self.waits.add(task)
                task.add_done_callback(self.waits.discard)
            else:
                await self.accept(job_id, payload)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(rng.expovariate(config.producer_rate)):
                    await stop.wait()
        if self.waits:
            # a wait still pending after its own timeout plus a margin is stuck: leave it unrecorded
            _, pending = await asyncio.wait(self.waits, timeout=config.wait_timeout + 15)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self.record("END")


async def run_producer(config: ChaosConfig, files: RunFiles, index: int) -> None:
    """Produce until SIGTERM, then let the pending waits end."""
    await Producer(config, files, index).run()


def main(argv: list[str]) -> None:
    """Entry point: ``ROLE RUN_DIR INDEX``."""
    role, run_dir, index = argv[0], Path(argv[1]), int(argv[2])
    files = RunFiles(run_dir)
    config = ChaosConfig.load(files.config)
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {role}-{index}[{PID}] %(message)s")
    if role == "worker":
        asyncio.run(run_worker(config, files))
    elif role == "reaper":
        asyncio.run(run_reaper(config, files))
    elif role == "producer":
        asyncio.run(run_producer(config, files, index))
    else:
        raise SystemExit(f"unknown role {role!r}: expected producer, worker or reaper")


if __name__ == "__main__":
    main(sys.argv[1:])
