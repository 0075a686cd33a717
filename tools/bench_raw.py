"""The raw limits jobqueue is compared with, measured by drivers like the others (see bench_common).

Redis (redis-py asyncio, hiredis parser), the minimal job loop without any feature:
the producer LPUSHes a job id; the worker BLMOVEs it to a processing list, then
in one pipeline LREMs it from there and LPUSHes a reply to a per-job list; a
waiting producer BRPOPs that list. Two round trips per job on the worker side,
like jobqueue's claim + finish.

    produce   LPUSH with ``--inflight`` in flight
    drain     ``--concurrency`` BLMOVE loops until ``--jobs`` are done
    serve     the same loops until ``stop``
    latency   sequential LPUSH + BRPOP reply
    ping      sequential PING and GET round trips (``--jobs`` of each)
    fsync     ``--jobs`` create+write+fsync+rename in the directory ``--url``, and as many directory fsyncs
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from redis.asyncio import Redis

from tools.bench_common import (
    DriverOptions,
    emit,
    parse_options,
    percentiles,
    timed_enqueues,
    timed_requests,
    wait_line,
)

QUEUE = "raw:queue"
PROCESSING = "raw:processing"
_PAYLOAD = b"x" * 64


def client(options: DriverOptions, connections: int) -> Redis:
    return Redis.from_url(options.url, max_connections=connections + 8, socket_keepalive=True)


async def produce(options: DriverOptions) -> dict[str, Any]:
    redis = client(options, options.inflight)
    await redis.ping()

    async def one(i: int) -> None:
        await redis.lpush(QUEUE, f"{options.prefix}{i}")

    result = await timed_enqueues(options, one)
    await redis.aclose()
    return result


async def work(redis: Redis, done: asyncio.Event, on_done: Any) -> None:
    while not done.is_set():
        message = await redis.blmove(QUEUE, PROCESSING, 1, "RIGHT", "LEFT")
        if not isinstance(message, bytes):
            continue
        async with redis.pipeline(transaction=False) as pipe:
            pipe.lrem(PROCESSING, 1, message)  # type: ignore[arg-type]  # redis-py types values as str
            pipe.lpush(b"raw:reply:" + message, _PAYLOAD)
            pipe.pexpire(b"raw:reply:" + message, 60_000)
            await pipe.execute()
        on_done()


async def worker(options: DriverOptions, *, serve: bool) -> dict[str, Any]:
    # one client per loop: a pool shared by 50 blocking loops costs more than the loop itself
    lanes = [client(options, 1) for _ in range(options.concurrency)]
    await asyncio.gather(*(lane.ping() for lane in lanes))  # open the connections
    done = asyncio.Event()
    count = 0

    def on_done() -> None:
        nonlocal count
        count += 1
        if not serve and count >= options.jobs:
            done.set()

    emit(ready=True)
    if serve:
        loops = [asyncio.create_task(work(lane, done, on_done)) for lane in lanes]
        await wait_line("stop")
        done.set()
        await asyncio.gather(*loops)
        await asyncio.gather(*(lane.aclose() for lane in lanes))
        return {}
    if await wait_line("go") != "go":
        return {}
    started = time.perf_counter()
    loops = [asyncio.create_task(work(lane, done, on_done)) for lane in lanes]
    await done.wait()
    seconds = time.perf_counter() - started
    await asyncio.gather(*loops)
    await asyncio.gather(*(lane.aclose() for lane in lanes))
    return {"seconds": seconds, "rate": options.jobs / seconds}


async def requests(options: DriverOptions, inflight: int) -> dict[str, Any]:
    redis = client(options, inflight)

    async def one(i: int) -> None:
        job = f"{options.prefix}{i}".encode()
        await redis.lpush(QUEUE, job)
        reply = await redis.brpop([b"raw:reply:" + job], 10)
        if reply is None:
            raise RuntimeError(f"no reply for {job!r}")

    for i in range(20):
        await one(-1 - i)
    emit(ready=True)
    if await wait_line("go") != "go":
        return {}
    result = await timed_requests(options.jobs, inflight, one)
    await redis.aclose()
    return result


async def ping(options: DriverOptions) -> dict[str, Any]:
    redis = client(options, 1)
    await redis.set(b"raw:key", _PAYLOAD)
    for _ in range(100):
        await redis.ping()
    emit(ready=True)
    if await wait_line("go") != "go":
        return {}
    pings: list[float] = []
    gets: list[float] = []
    for samples, call in ((pings, redis.ping), (gets, lambda: redis.get(b"raw:key"))):
        for _ in range(options.jobs):
            start = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - start) * 1000)
    await redis.aclose()
    return {"ping_p50": percentiles(pings)["p50"], "get_p50": percentiles(gets)["p50"]}


def _atomic_write(directory: str, i: int, data: bytes, *, sync: bool) -> float:
    start = time.perf_counter()
    temp = os.path.join(directory, f".tmp-{i}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, os.path.join(directory, f"record-{i % 16}"))
    return (time.perf_counter() - start) * 1000


def _dir_fsync(directory: str) -> float:
    start = time.perf_counter()
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return (time.perf_counter() - start) * 1000


def fsync_costs(directory: str, count: int) -> dict[str, float]:
    """Median milliseconds of one atomic durable write (create+write+fsync+rename), one directory
    fsync, and one atomic write without fsync, in ``directory``."""
    os.makedirs(directory, exist_ok=True)
    data = os.urandom(256)
    writes = [_atomic_write(directory, i, data, sync=True) for i in range(count)]
    dirsyncs = [_dir_fsync(directory) for _ in range(count)]
    nosyncs = [_atomic_write(directory, i, data, sync=False) for i in range(count)]
    return {
        "write_ms": percentiles(writes)["p50"],
        "dirsync_ms": percentiles(dirsyncs)["p50"],
        "nosync_ms": percentiles(nosyncs)["p50"],
    }


async def main(options: DriverOptions) -> None:
    if options.mode == "fsync":
        emit(ready=True)
        if await wait_line("go") == "go":
            emit(result=fsync_costs(options.url, options.jobs))
        return
    if options.mode == "produce":
        result = await produce(options)
    elif options.mode in ("drain", "serve"):
        result = await worker(options, serve=options.mode == "serve")
    elif options.mode == "latency":
        result = await requests(options, 1)
    elif options.mode == "waiters":
        result = await requests(options, options.inflight)
    else:
        result = await ping(options)
    emit(result=result)


if __name__ == "__main__":
    asyncio.run(main(parse_options(sys.argv[1:], extra_modes=("ping", "fsync"))))
