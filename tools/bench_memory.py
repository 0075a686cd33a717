"""The in-process cost of the core: CPU time per no-op job drained from MemoryStorage.

    uv run python tools/bench_memory.py --jobs 100000 --concurrency 50
    uv run python tools/bench_memory.py --profile     # also: where the drain's time goes (cProfile)

Enqueues the jobs (not timed), then starts one worker at ``--concurrency`` and
measures the process's CPU time (``time.process_time``) and the wall time until
the last completion. No server, no I/O: what remains is jobqueue's own Python
work per job (decode, claim, handler call, outcome, events). Prints one JSON
line, like the other drivers' ``result``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
from typing import Any

from jobqueue import Job, MemoryStorage, Queue


async def drain(jobs: int, concurrency: int, profiler: cProfile.Profile | None = None) -> dict[str, Any]:
    storage = MemoryStorage()
    queue: Queue[None, None] = Queue(storage, concurrency=concurrency, result_ttl=600.0)
    done = asyncio.Event()
    completed = 0

    @queue.execute
    async def noop(job: Job[None]) -> None:
        return None

    def count(*_: Any) -> None:
        nonlocal completed
        completed += 1
        if completed == jobs:
            done.set()

    queue.on("completed", count)
    async with storage:
        for start in range(0, jobs, 1000):
            await queue.enqueue_many([(f"job-{i}", None) for i in range(start, min(jobs, start + 1000))])
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        async with queue:
            await done.wait()
        if profiler is not None:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_us_per_job": cpu / jobs * 1e6, "rate": jobs / wall, "jobs": jobs}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="print the drain's cProfile to stderr")
    args = parser.parse_args()
    profiler = cProfile.Profile() if args.profile else None
    print(json.dumps(asyncio.run(drain(args.jobs, args.concurrency, profiler))))
    if profiler is not None:  # cProfile inflates small calls: read shares, not absolute times
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
