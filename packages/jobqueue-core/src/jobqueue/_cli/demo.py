"""``jobqueue demo``: workers, a reaper, a burst of jobs, a request/response and a retry, in seconds."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from .._contract.capabilities import LeaderLock, Monitoring
from .._contract.storage import Storage
from .._errors import StorageError
from .._job import Job
from .._memory import MemoryStorage
from .._queue import Queue
from .._reaper import LeaderElection, Reaper
from .._types import JobState
from .._urls import redact_url, storage_from_url
from .client import to_json
from .common import CliError, open_storage, unreachable
from .output import Output

__all__ = ["DEMO_QUEUE", "run_demo"]

DEMO_QUEUE = "demo"
WORKERS = 2
CONCURRENCY = 16
VISIBILITY_TIMEOUT = 10.0
BATCH_TIMEOUT = 60.0


def demo_storage(url: str | None) -> tuple[Storage, str]:
    """The storage to run on and its URL: ``--storage``, else files in ./.jobqueue, else memory."""
    if url:
        return open_storage(url), redact_url(url)
    directory = Path(".jobqueue").resolve()
    try:
        return storage_from_url(directory.as_uri()), directory.as_uri()
    except (ImportError, AttributeError, ValueError):  # jobqueue-file is not installed (or not yet usable)
        return MemoryStorage(), "memory://"


async def demo_handler(job: Job[dict[str, Any]]) -> dict[str, Any]:
    """Square a number after a little simulated I/O; ``fail_once`` jobs fail on their first attempt."""
    if job.payload.get("fail_once") and job.attempt == 1:
        raise RuntimeError("simulated failure on the first attempt")
    await asyncio.sleep(0.002)
    n = int(job.payload.get("n", 0))
    return {"n": n, "square": n * n, "attempt": job.attempt}


class _Batch:
    """Follows the burst of jobs: completion times, latencies, retries."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.enqueued_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.retries = 0
        self.done = asyncio.Event()
        self.progress: Any = None

    def on_completed(self, job_id: str, _result: Any) -> None:
        started = self.enqueued_at.pop(job_id, None)
        if started is None:  # the request/response or the retry job, not part of the burst
            return
        self.latencies.append(time.perf_counter() - started)
        if self.progress is not None:
            self.progress.advance("completed")
        if len(self.latencies) == self.total:
            self.done.set()


async def _burst(out: Output, producer: Queue[Any, Any], batch: _Batch, run: str) -> float:
    """Enqueue the jobs with a live progress bar; return the seconds until the last completed."""
    progress = batch.progress = out.progress(["enqueued", "completed"], batch.total)
    started = time.perf_counter()
    try:

        async def one(i: int) -> None:
            job_id = f"{run}-{i:05d}"
            batch.enqueued_at[job_id] = time.perf_counter()  # before the await: completion may come first
            await producer.enqueue(job_id, {"n": i})
            progress.advance("enqueued")

        for first in range(0, batch.total, 50):
            await asyncio.gather(*(one(i) for i in range(first, min(first + 50, batch.total))))
        try:
            async with asyncio.timeout(BATCH_TIMEOUT):
                await batch.done.wait()
        except TimeoutError:
            raise CliError(
                f"only {len(batch.latencies)} of {batch.total} demo jobs completed within {BATCH_TIMEOUT:g}s"
            ) from None
        return time.perf_counter() - started
    finally:
        progress.close()
        batch.progress = None


async def _round_trip(out: Output, producer: Queue[Any, Any], run: str) -> float:
    payload = {"n": 12}
    started = time.perf_counter()
    result = await producer.enqueue_and_wait(f"{run}-request", payload, timeout=10)
    latency = time.perf_counter() - started
    out.print(
        f"request/response: {to_json(payload)} -> {to_json(result)} in {latency * 1000:.1f} ms", style="cyan"
    )
    return latency


async def _retried(out: Output, producer: Queue[Any, Any], run: str) -> None:
    result = await producer.enqueue_and_wait(f"{run}-flaky", {"n": 7, "fail_once": True}, timeout=10)
    out.print(f"  then completed on attempt {result['attempt']}: {to_json(result)}", style="green")


def _summary(out: Output, batch: _Batch, seconds: float, round_trip: float, storage: str) -> None:
    ordered = sorted(batch.latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    rows = [
        ["jobs", f"{batch.total:,}"],
        ["seconds", f"{seconds:.2f}"],
        ["jobs/s", f"{batch.total / seconds:,.0f}"],
        ["retries", str(batch.retries)],
        ["p50 latency", f"{p50:.1f} ms"],
        ["p99 latency", f"{p99:.1f} ms"],
        ["request/response", f"{round_trip * 1000:.1f} ms"],
        ["workers", f"{WORKERS} x concurrency {CONCURRENCY}"],
        ["storage", storage],
    ]
    out.table("summary", ["metric", "value"], rows)


async def run_demo(args: argparse.Namespace, out: Output) -> int:
    """Run the demo; return the exit code."""
    storage, label = demo_storage(args.storage)
    run = f"demo-{secrets.token_hex(3)}"
    batch = _Batch(args.jobs)
    out.heading(f"jobqueue demo: {args.jobs} jobs on {label}, queue {DEMO_QUEUE!r}")
    if isinstance(storage, MemoryStorage) and not args.storage:
        out.print("(in memory: install jobqueue-file to run on durable files in ./.jobqueue)")
    producer: Queue[Any, Any] = Queue(storage, name=DEMO_QUEUE, result_ttl=300)
    election = LeaderElection() if isinstance(storage, LeaderLock) else None
    reaper = Reaper(storage, name=DEMO_QUEUE, visibility_timeout=VISIBILITY_TIMEOUT, leader_election=election)
    workers: list[Queue[Any, Any]] = []
    for _ in range(WORKERS):
        worker: Queue[Any, Any] = Queue(
            storage,
            name=DEMO_QUEUE,
            concurrency=CONCURRENCY,
            retry_backoff=0.05,
            block_timeout=1.0,
            visibility_timeout=VISIBILITY_TIMEOUT,
        )
        worker.execute(demo_handler)
        worker.on("completed", batch.on_completed)
        worker.on("failing", lambda *event: _on_failing(out, batch, *event))
        workers.append(worker)
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(producer)
            stack.push_async_callback(_clean_up, out, producer)
            await stack.enter_async_context(reaper)
            for worker in workers:
                await stack.enter_async_context(worker)
        except StorageError as exc:
            raise unreachable(args.storage or label, exc) from exc
        out.print(f"started {WORKERS} workers (concurrency {CONCURRENCY} each) and a reaper")
        seconds = await _burst(out, producer, batch, run)
        round_trip = await _round_trip(out, producer, run)
        await _retried(out, producer, run)
        _summary(out, batch, seconds, round_trip, label)
    out.print("next: run your own handler with `jobqueue worker app.module:handler --storage URL`")
    return 0


def _on_failing(
    out: Output, batch: _Batch, job_id: str, error: BaseException, attempt: int, delay: float
) -> None:
    batch.retries += 1
    message = f"failing: job {job_id} attempt {attempt} raised {type(error).__name__}: {error}; retry in {delay:.2f}s"
    out.print(message, style="yellow")


async def _clean_up(out: Output, producer: Queue[Any, Any]) -> None:
    """Delete what the demo left in its queue (it has its own namespace, so nothing else is touched)."""
    storage = producer.storage
    if not isinstance(storage, Monitoring):  # nothing to purge with: the jobs expire with their TTL
        out.print(f"the demo's finished jobs expire on their own ({type(storage).__name__} cannot purge)")
        return
    try:
        purged = await storage.purge([JobState.COMPLETED, JobState.FAILED])
    except StorageError as exc:
        out.error(f"could not clean up the demo queue: {exc}")
        return
    out.print(f"cleaned up: {purged} finished jobs removed from queue {DEMO_QUEUE!r}")
