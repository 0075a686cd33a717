"""Benchmark drivers for the Python peers, arq and saq (run with ``.bench/venv/bin/python``).

    .bench/venv/bin/python tools/bench_peers.py arq drain --url redis://127.0.0.1:PORT/0 --jobs 20000

Same modes and protocol as the other drivers (see bench_common). Settings that
differ from each library's defaults, all to give it a fair chance on latency:
both wait for results by polling, so arq's ``job.result(poll_delay=)`` and
saq's ``queue.apply(poll_interval=)`` are 10 ms (defaults 0.5 s), and arq's
worker ``poll_delay`` too (saq's worker blocks on BLMOVE).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from tools.bench_common import (
    DriverOptions,
    emit,
    parse_options,
    timed_enqueues,
    timed_requests,
    wait_line,
)

_POLL = 0.01
_WARMUP = 20

Hook = Callable[[Any], Awaitable[None]]


# ------------------------------------------------------------------------------------ arq


async def arq_noop(ctx: Any, i: int) -> int:
    return i


class Arq:
    def __init__(self, options: DriverOptions) -> None:
        self.options = options
        self.connections = importlib.import_module("arq.connections")
        self.worker_module = importlib.import_module("arq.worker")
        self.pool: Any = None

    async def connect(self) -> None:
        settings = self.connections.RedisSettings.from_dsn(self.options.url)
        self.pool = await self.connections.create_pool(settings, default_queue_name=self.options.queue)

    async def close(self) -> None:
        await self.pool.aclose()

    async def enqueue(self, i: int) -> None:
        job = await self.pool.enqueue_job("arq_noop", i, _job_id=f"{self.options.prefix}{i}")
        if job is None:
            raise RuntimeError(f"job {i} was a duplicate")

    async def request(self, i: int) -> Any:
        job = await self.pool.enqueue_job("arq_noop", i, _job_id=f"{self.options.prefix}{i}")
        return await job.result(timeout=30, poll_delay=_POLL)

    def worker(
        self, after: Hook
    ) -> tuple[Callable[[], Coroutine[Any, Any, None]], Callable[[], Coroutine[Any, Any, None]]]:
        worker = self.worker_module.Worker(
            functions=[arq_noop],
            redis_pool=self.pool,
            queue_name=self.options.queue,
            max_jobs=self.options.concurrency,
            poll_delay=_POLL,
            handle_signals=False,
            after_job_end=after,
        )

        async def stop() -> None:
            await worker.close()

        return worker.main, stop


# ------------------------------------------------------------------------------------ saq


async def saq_noop(ctx: Any, *, i: int) -> int:
    return i


class Saq:
    def __init__(self, options: DriverOptions) -> None:
        self.options = options
        self.saq = importlib.import_module("saq")
        self.queue: Any = self.saq.Queue.from_url(options.url, name=options.queue)

    async def connect(self) -> None:
        await self.queue.connect()

    async def close(self) -> None:
        await self.queue.disconnect()

    async def enqueue(self, i: int) -> None:
        job = await self.queue.enqueue("saq_noop", key=f"{self.options.prefix}{i}", i=i, ttl=600)
        if job is None:
            raise RuntimeError(f"job {i} was a duplicate")

    async def request(self, i: int) -> Any:
        key = f"{self.options.prefix}{i}"
        return await self.queue.apply("saq_noop", key=key, i=i, timeout=30, poll_interval=_POLL)

    def worker(
        self, after: Hook
    ) -> tuple[Callable[[], Coroutine[Any, Any, None]], Callable[[], Coroutine[Any, Any, None]]]:
        worker = self.saq.Worker(
            self.queue, functions=[saq_noop], concurrency=self.options.concurrency, after_process=after
        )
        worker.SIGNALS = []  # the parent stops it through stdin

        async def stop() -> None:
            await worker.stop()

        return worker.start, stop


# ---------------------------------------------------------------------------------- modes


async def drain(peer: Arq | Saq, options: DriverOptions, *, serve: bool) -> dict[str, Any]:
    done = asyncio.Event()
    count = 0

    async def after(ctx: Any) -> None:
        nonlocal count
        count += 1
        if count >= options.jobs:
            done.set()

    run, stop = peer.worker(after)
    emit(ready=True)
    if serve:
        task = asyncio.create_task(run())
        await wait_line("stop")
        await stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return {}
    if await wait_line("go") != "go":
        return {}
    started = time.perf_counter()
    task = asyncio.create_task(run())
    await done.wait()
    seconds = time.perf_counter() - started
    await stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return {"seconds": seconds, "rate": options.jobs / seconds}


async def requests(peer: Arq | Saq, options: DriverOptions, inflight: int) -> dict[str, Any]:
    async def one(i: int) -> None:
        value = await peer.request(i)
        if value != i:
            raise RuntimeError(f"job {i}: got {value!r}")

    for i in range(_WARMUP):
        await one(-1 - i)
    emit(ready=True)
    if await wait_line("go") != "go":
        return {}
    return await timed_requests(options.jobs, inflight, one)


async def main(kind: str, options: DriverOptions) -> None:
    logging.basicConfig(level=logging.WARNING)
    peer: Arq | Saq = Arq(options) if kind == "arq" else Saq(options)
    await peer.connect()
    try:
        if options.mode == "produce":
            result = await timed_enqueues(options, peer.enqueue)
            if not result:
                return
        elif options.mode in ("drain", "serve"):
            result = await drain(peer, options, serve=options.mode == "serve")
        else:
            result = await requests(peer, options, 1 if options.mode == "latency" else options.inflight)
    finally:
        await peer.close()
    emit(result=result)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("arq", "saq"):
        sys.exit("usage: bench_peers.py {arq,saq} MODE --url URL ...")
    asyncio.run(main(sys.argv[1], parse_options(sys.argv[2:])))
