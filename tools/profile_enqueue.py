"""Where a producer's time goes: cProfile of ``enqueue`` calls, 50 in flight, on a throw-away Redis.

    uv run python tools/profile_enqueue.py --jobs 20000

The bench's enqueue workload (tools/bench_jobqueue.py ``produce``) under
cProfile, in one process with its own redis-server. cProfile inflates the
cost of small Python calls: read the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tools.*

from jobqueue import Queue, storage_from_url

from tools.bench_common import run_inflight
from tools.servers import ServerProcess


async def _profile(url: str, jobs: int, inflight: int) -> None:
    async with Queue[int, int](storage_from_url(url), result_ttl=600.0) as queue:

        async def warm(i: int) -> None:
            await queue.enqueue(f"warm-{i}", i)

        async def one(i: int) -> None:
            await queue.enqueue(f"job-{i}", i)

        await run_inflight(1000, inflight, warm)  # script loads, connections
        profiler = cProfile.Profile()
        cpu = time.process_time()
        profiler.enable()
        seconds = await run_inflight(jobs, inflight, one)
        profiler.disable()
        cpu = time.process_time() - cpu
    print(f"{jobs / seconds:,.0f} jobs/s profiled, {cpu / jobs * 1e6:.1f} us of CPU per job")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--inflight", type=int, default=50)
    args = parser.parse_args()
    with ServerProcess.start_new("redis") as server:
        asyncio.run(_profile(server.url, args.jobs, args.inflight))


if __name__ == "__main__":
    main()
