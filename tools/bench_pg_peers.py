"""Benchmark drivers for the Python peers on PostgreSQL: pgqueuer and procrastinate (``.bench/venv/bin/python``).

    .bench/venv/bin/python -m tools.bench_pg_peers pgqueuer drain --url postgresql://... --jobs 2000

Same modes and protocol as the other drivers (see bench_common); saq's Postgres
queue runs through ``tools/bench_peers.py saq`` with a ``postgresql://`` URL.
Neither pgqueuer nor procrastinate stores a job's return value, so neither can
answer request/response: their ``latency`` and ``waiters`` modes report an
error that the bench turns into "—" and a note. Settings that differ from each
library's defaults: pgqueuer's worker takes batches of 10 with at most
``--concurrency`` jobs in flight (its documented knobs); procrastinate's worker
runs ``--concurrency`` sub-workers and listens for NOTIFY (its default).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from tools.bench_common import DriverOptions, emit, parse_options, timed_enqueues, wait_line

NO_RESULTS = {
    "pgqueuer": "pgqueuer stores no job results (its CompletionWatcher reports a status, not a value)",
    "procrastinate": "procrastinate stores no job results",
}

Runner = tuple[Callable[[], Coroutine[Any, Any, None]], Callable[[], Coroutine[Any, Any, None]]]


class Counter:
    """Completions seen by the handler; ``done`` is set at ``target``."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.done = asyncio.Event()

    def hit(self) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()


# -------------------------------------------------------------------------------- pgqueuer


class PgQueuer:
    def __init__(self, options: DriverOptions) -> None:
        self.options = options
        self.pgq = importlib.import_module("pgqueuer")
        self.asyncpg = importlib.import_module("asyncpg")
        self.pool: Any = None
        self.queries: Any = None
        self.entrypoint = f"noop_{options.queue.replace('-', '_')}"

    async def connect(self) -> None:
        self.pool = await self.asyncpg.create_pool(self.options.url, min_size=2, max_size=20)
        self.queries = self.pgq.Queries(self.pgq.AsyncpgPoolDriver(self.pool))
        if not await self.queries.has_table("pgqueuer"):
            await self.queries.install()

    async def close(self) -> None:
        await self.pool.close()

    async def enqueue(self, i: int) -> None:
        await self.queries.enqueue(self.entrypoint, str(i).encode())

    def worker(self, counter: Counter) -> Runner:
        async def noop(job: Any) -> None:
            counter.hit()

        pgq = self.pgq.PgQueuer.from_asyncpg_pool(self.pool)
        pgq.entrypoint(self.entrypoint)(noop)

        async def run() -> None:
            await pgq.run(batch_size=10, max_concurrent_tasks=self.options.concurrency)

        async def stop() -> None:
            pgq.shutdown.set()

        return run, stop


# --------------------------------------------------------------------------- procrastinate


class Procrastinate:
    def __init__(self, options: DriverOptions) -> None:
        self.options = options
        procrastinate = importlib.import_module("procrastinate")
        self.app: Any = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=options.url))
        self.counter: Counter | None = None
        self.queue = options.queue

        async def noop(i: int) -> int:
            if self.counter is not None:
                self.counter.hit()
            return i

        self.task: Any = self.app.task(name="noop", queue=self.queue)(noop)

    async def connect(self) -> None:
        await self.app.open_async()
        row = await self.app.connector.execute_query_one_async(
            "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS installed"
        )
        if not row["installed"]:
            await self.app.schema_manager.apply_schema_async()

    async def close(self) -> None:
        await self.app.close_async()

    async def enqueue(self, i: int) -> None:
        await self.task.defer_async(i=i)

    def worker(self, counter: Counter) -> Runner:
        self.counter = counter
        task: asyncio.Task[None] | None = None

        async def run() -> None:
            nonlocal task
            task = asyncio.current_task()
            await self.app.run_worker_async(
                queues=[self.queue],
                concurrency=self.options.concurrency,
                wait=True,
                install_signal_handlers=False,
                delete_jobs="successful",
            )

        async def stop() -> None:
            if task is not None:
                task.cancel()

        return run, stop


# ----------------------------------------------------------------------------------- modes


async def drain(peer: PgQueuer | Procrastinate, options: DriverOptions, *, serve: bool) -> dict[str, Any]:
    counter = Counter(options.jobs if not serve else 1 << 62)
    run, stop = peer.worker(counter)
    emit(ready=True)
    if serve:
        task = asyncio.create_task(run())
        await wait_line("stop")
        await stop()
        await asyncio.gather(task, return_exceptions=True)
        return {}
    if await wait_line("go") != "go":
        return {}
    started = time.perf_counter()
    task = asyncio.create_task(run())
    await counter.done.wait()
    seconds = time.perf_counter() - started
    await stop()
    _, pending = await asyncio.wait({task}, timeout=10.0)
    for late in pending:
        late.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return {"seconds": seconds, "rate": options.jobs / seconds}


async def main(kind: str, options: DriverOptions) -> None:
    logging.basicConfig(level=logging.WARNING)
    if options.mode in ("latency", "waiters"):
        emit(error=f"no request/response: {NO_RESULTS[kind]}")
        return
    peer: PgQueuer | Procrastinate = PgQueuer(options) if kind == "pgqueuer" else Procrastinate(options)
    await peer.connect()
    try:
        if options.mode == "produce":
            result = await timed_enqueues(options, peer.enqueue)
            if not result:
                return
        else:
            result = await drain(peer, options, serve=options.mode == "serve")
    finally:
        await peer.close()
    emit(result=result)


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in NO_RESULTS:
        sys.exit("usage: bench_pg_peers.py {pgqueuer,procrastinate} MODE --url URL ...")
    asyncio.run(main(sys.argv[1], parse_options(sys.argv[2:])))
