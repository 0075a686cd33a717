"""Benchmark driver for jobqueue itself, on any storage URL (redis://, file://). See bench_common.

    uv run python tools/bench_jobqueue.py drain --url redis://127.0.0.1:PORT/0 --jobs 20000

``--profile FILE`` (drain only) runs the drain under cProfile and dumps the stats to FILE.
"""

from __future__ import annotations

import asyncio
import cProfile
import sys
import time
from typing import Any

from jobqueue import Job, Queue, Storage, storage_from_url

from tools.bench_common import (
    DriverOptions,
    emit,
    parse_options,
    timed_enqueues,
    timed_requests,
    wait_line,
)

_LATENCY_WARMUP = 20


async def noop(job: Job[int]) -> int:
    return job.payload


def make_queue(storage: Storage, options: DriverOptions, *, worker: bool) -> Queue[int, int]:
    queue: Queue[int, int] = Queue(
        storage,
        name=options.queue,
        concurrency=options.concurrency,
        block_timeout=1.0,
        result_ttl=600.0,
    )
    if worker:
        queue.execute(noop)
    return queue


async def produce(storage: Storage, options: DriverOptions) -> dict[str, Any]:
    async with make_queue(storage, options, worker=False) as queue:

        async def one(i: int) -> None:
            result = await queue.enqueue(f"{options.prefix}{i}", i)
            if result.status != "queued":
                raise RuntimeError(f"job {i}: {result.status}")

        return await timed_enqueues(options, one)


async def drain(storage: Storage, options: DriverOptions, profile: str | None) -> dict[str, Any]:
    queue = make_queue(storage, options, worker=True)
    done = asyncio.Event()
    count = 0

    def completed(*_: Any) -> None:
        nonlocal count
        count += 1
        if count >= options.jobs:
            done.set()

    queue.on("completed", completed)
    await storage.connect()  # connections open before the clock starts
    try:
        emit(ready=True)
        if await wait_line("go") != "go":
            return {}
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            profiler.enable()
        started = time.perf_counter()
        await queue.start()
        await done.wait()
        seconds = time.perf_counter() - started
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)
        await queue.stop(timeout=5.0)
    finally:
        await storage.disconnect()
    return {"seconds": seconds, "rate": options.jobs / seconds}


async def serve(storage: Storage, options: DriverOptions) -> dict[str, Any]:
    async with make_queue(storage, options, worker=True):
        emit(ready=True)
        await wait_line("stop")
    return {}


async def requests(storage: Storage, options: DriverOptions, inflight: int) -> dict[str, Any]:
    async with make_queue(storage, options, worker=False) as queue:

        async def one(i: int) -> None:
            value = await queue.enqueue_and_wait(f"{options.prefix}{i}", i, timeout=30.0)
            if value != i:
                raise RuntimeError(f"job {i}: got {value!r}")

        warm = f"{options.prefix}warm-"
        for i in range(_LATENCY_WARMUP):  # first subscription, script loads, connection warm-up
            await queue.enqueue_and_wait(f"{warm}{i}", i, timeout=30.0)
        emit(ready=True)
        if await wait_line("go") != "go":
            return {}
        return await timed_requests(options.jobs, inflight, one)


async def main(options: DriverOptions, profile: str | None) -> None:
    storage = storage_from_url(options.url)
    if options.mode == "produce":
        result = await produce(storage, options)
    elif options.mode == "drain":
        result = await drain(storage, options, profile)
    elif options.mode == "serve":
        result = await serve(storage, options)
    elif options.mode == "latency":
        result = await requests(storage, options, 1)
    else:
        result = await requests(storage, options, options.inflight)
    emit(result=result)


if __name__ == "__main__":
    argv = sys.argv[1:]
    profile_file: str | None = None
    if "--profile" in argv:
        at = argv.index("--profile")
        profile_file = argv[at + 1]
        del argv[at : at + 2]
    asyncio.run(main(parse_options(argv), profile_file))
