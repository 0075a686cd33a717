"""Does a deep Redis queue stay cheap? Per-job cost of enqueue and of claim+complete at 1k, 100k, 1M queued.

Run by hand (a few minutes; needs ``redis-server`` or ``--url``)::

    uv run python tools/scale.py                   # a throw-away redis-server
    uv run python tools/scale.py --levels 1000,100000 --url redis://127.0.0.1:6379/0

For each level the queue is first filled to that many ready jobs with the
storage's own batch enqueue (one script call per 1,000 jobs). Then, with the queue at that depth, ``--samples``
jobs are enqueued one at a time, and ``--samples`` jobs are claimed
(``dequeue``, limit 1, no wait) and completed one at a time. Reported per job:

- wall µs: client-side time of the sequential calls (round trips included);
- server µs: time the server spent in those commands (``INFO commandstats``,
  scripts included);
- commands: Redis commands executed, counting those run inside Lua scripts;
- round trips: top-level calls (``EVALSHA``) the client made.

Flat means the cost at 1M is the cost at 1k: no command in the hot path
walks the queue.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tools.servers

from jobqueue.storage import Envelope, NewJob, encode_envelope
from jobqueue_redis import RedisStorage
from redis.asyncio import Redis

from tools.servers import ServerProcess

FILL_BATCH = 1_000
MESSAGE = encode_envelope(Envelope(b'{"n":1}', 0, 3, 60_000))
RESULT = b'{"ok":true}'


@dataclass(frozen=True)
class Cost:
    """Per-job cost of one operation at one queue depth."""

    wall_us: float
    server_us: float
    commands: float
    round_trips: float


async def command_stats(client: Redis) -> dict[str, tuple[int, int]]:
    """``{command: (calls, usec)}`` from ``INFO commandstats``."""
    info = await client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(stats["calls"]), int(stats["usec"]))
        for name, stats in info.items()
        if isinstance(stats, dict)
    }


def _delta(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    out = {}
    for name, (calls, usec) in after.items():
        calls0, usec0 = before.get(name, (0, 0))
        if name != "info" and calls > calls0:
            out[name] = (calls - calls0, usec - usec0)
    return out


async def fill(storage: RedisStorage, start: int, stop: int) -> None:
    """Enqueue jobs ``start`` .. ``stop - 1`` with ``enqueue_many``: one script call per 1,000 jobs."""
    for first in range(start, stop, FILL_BATCH):
        jobs = [NewJob(f"fill-{i}", MESSAGE) for i in range(first, min(first + FILL_BATCH, stop))]
        outcomes = await storage.enqueue_many(jobs)
        assert all(outcome.accepted for outcome in outcomes), "a fill job was not accepted"


async def measure(client: Redis, samples: int, step: Callable[[int], Awaitable[None]]) -> Cost:
    """Run ``step(i)`` ``samples`` times, one at a time; return the per-call cost."""
    before = await command_stats(client)
    started = time.perf_counter()
    for i in range(samples):
        await step(i)
    wall = time.perf_counter() - started
    delta = _delta(before, await command_stats(client))
    scripts = sum(delta.get(name, (0, 0))[0] for name in ("evalsha", "eval", "bzpopmin"))
    script_usec = sum(delta.get(name, (0, 0))[1] for name in ("evalsha", "eval", "bzpopmin"))
    return Cost(
        wall_us=wall / samples * 1e6,
        server_us=script_usec / samples,
        commands=sum(calls for calls, _ in delta.values()) / samples,
        round_trips=scripts / samples,
    )


async def run(url: str, levels: list[int], samples: int) -> list[tuple[int, Cost, Cost, float]]:
    prefix = f"scale{uuid.uuid4().hex[:8]}"
    rows = []
    client = Redis.from_url(url, protocol=2)
    async with RedisStorage(url, prefix=prefix) as storage:
        queued = 0
        worker = "scale-worker"
        for level in levels:
            started = time.perf_counter()
            await fill(storage, queued, level)
            fill_s = time.perf_counter() - started
            queued = level
            depth = await client.zcard(storage.keys.fixed("ready"))
            print(f"filled to {depth:,} queued in {fill_s:.1f}s", file=sys.stderr)

            async def enqueue(i: int, level: int = level) -> None:
                await storage.enqueue(f"sample-{level}-{i}", MESSAGE)

            async def claim_complete(i: int) -> None:
                claims = await storage.dequeue(worker, lease_ms=60_000, timeout_ms=0, limit=1)
                assert len(claims) == 1, "the queue ran dry"
                assert await storage.complete(claims[0].id, worker, RESULT, 60_000)

            enqueue_cost = await measure(client, samples, enqueue)
            claim_cost = await measure(client, samples, claim_complete)
            rows.append((level, enqueue_cost, claim_cost, fill_s))
        await _cleanup(client, prefix)
    await client.aclose()
    return rows


async def _cleanup(client: Redis, prefix: str) -> None:
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}:*", count=10_000):
        batch.append(key)
        if len(batch) >= 10_000:
            await client.unlink(*batch)
            batch = []
    if batch:
        await client.unlink(*batch)


def table(rows: list[tuple[int, Cost, Cost, float]], samples: int) -> str:
    head = (
        "| queued | enqueue wall µs | enqueue server µs | enqueue cmds | claim+complete wall µs "
        "| claim+complete server µs | claim+complete cmds | claim+complete round trips | fill s |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    lines = [head]
    for level, enq, claim, fill_s in rows:
        lines.append(
            f"| {level:,} | {enq.wall_us:.0f} | {enq.server_us:.1f} | {enq.commands:.1f} "
            f"| {claim.wall_us:.0f} | {claim.server_us:.1f} | {claim.commands:.1f} | {claim.round_trips:.1f} "
            f"| {fill_s:.1f} |"
        )
    lines.append(f"\n(per job, means over {samples:,} sequential calls at each depth)")
    return "\n".join(lines)


@contextlib.contextmanager
def server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with ServerProcess.start_new("redis") as process:
        yield process.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="a running Redis/Valkey (default: start a throw-away redis-server)")
    parser.add_argument("--levels", default="1000,100000,1000000", help="queue depths, comma-separated")
    parser.add_argument("--samples", type=int, default=2000, help="sequential calls measured per depth")
    args = parser.parse_args()
    levels = sorted(int(level) for level in args.levels.split(","))
    with server(args.url) as url:
        rows = asyncio.run(run(url, levels, args.samples))
    print(table(rows, args.samples))


if __name__ == "__main__":
    main()
