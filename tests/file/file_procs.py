"""Child processes for the FileStorage multi-process tests: ``python file_procs.py COMMAND ROOT [ARGS]``.

Each command connects to the storage at ROOT, prints ``ready`` once it is set
up and, where the parent coordinates a start, waits for a line on stdin.
Results are printed one JSON value per line, flushed at once, so that a
process killed with SIGKILL has reported everything it completed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable

from jobqueue import Job, LeaderElection, Queue, Reaper
from jobqueue_file import FileStorage
from jobqueue_file._names import encode_key


def say(value: object) -> None:
    print(json.dumps(value), flush=True)


async def enqueue_same(storage: FileStorage, count: str) -> None:
    """Enqueue ids job-0..job-N once each; print the ids this process got accepted."""
    say("ready")
    await asyncio.to_thread(sys.stdin.readline)
    accepted = []
    for i in range(int(count)):
        outcome = await storage.enqueue(f"job-{i}", b"x")
        if outcome.accepted:
            accepted.append(f"job-{i}")
    say(accepted)


async def claim_all(storage: FileStorage, worker: str) -> None:
    """Claim and complete until the queue stays empty; print the ids claimed."""
    say("ready")
    await asyncio.to_thread(sys.stdin.readline)
    claimed = []
    while claims := await storage.dequeue(worker, lease_ms=30_000, timeout_ms=300, limit=4):
        for claim in claims:
            claimed.append(claim.id)
            assert await storage.complete(claim.id, worker, b"done", 60_000)
    say(claimed)


async def wait_one(storage: FileStorage, timeout_ms: str) -> None:
    """Block in dequeue on an empty queue; print when it woke and the CPU time it used meanwhile."""
    task = asyncio.create_task(storage.dequeue("waiter", lease_ms=30_000, timeout_ms=int(timeout_ms)))
    watcher = storage._root.watchers.get(storage.name)
    while watcher is None or not any(watcher._waiters.values()):
        await asyncio.sleep(0.001)
        watcher = storage._root.watchers.get(storage.name)
    cpu, wall = time.process_time(), time.monotonic()
    say("ready")
    claims = await task
    say(
        {
            "woke_at": time.time(),
            "cpu": time.process_time() - cpu,
            "wall": time.monotonic() - wall,
            "ids": [claim.id for claim in claims],
        }
    )


async def produce(storage: FileStorage, prefix: str) -> None:
    """Enqueue jobs until killed; print each id once it was accepted."""
    say("ready")
    i = 0
    while True:
        job_id = f"{prefix}-{i}"
        if (await storage.enqueue(job_id, b"payload" * 20)).accepted:
            say(job_id)
        i += 1


async def work(storage: FileStorage, worker: str) -> None:
    """Claim and complete jobs with a short lease until killed; print each completed id."""
    say("ready")
    while True:
        for claim in await storage.dequeue(worker, lease_ms=200, timeout_ms=100, limit=3):
            if await storage.complete(claim.id, worker, b"result", 600_000):
                say(claim.id)


async def register(storage: FileStorage, worker: str, ttl_ms: str) -> None:
    """Register a worker once, then hang until killed (it never heartbeats again)."""
    await storage.register_worker(worker, int(ttl_ms))
    say("ready")
    await asyncio.Event().wait()


async def queue_produce(storage: FileStorage, prefix: str, count: str) -> None:
    """Enqueue COUNT jobs through a Queue after the go line; print "done"."""
    queue: Queue[dict[str, int], int] = Queue(storage)
    say("ready")
    await asyncio.to_thread(sys.stdin.readline)
    async with queue:
        for i in range(int(count)):
            result = await queue.enqueue(f"{prefix}-{i}", {"n": i})
            assert result.status == "queued", result
    say("done")


async def queue_feed(storage: FileStorage, prefix: str) -> None:
    """Enqueue through a Queue until killed; print each id once it was accepted."""
    queue: Queue[dict[str, int], int] = Queue(storage)
    async with queue:
        say("ready")
        i = 0
        while True:
            if (await queue.enqueue(f"{prefix}-{i}", {"n": i})).status == "queued":
                say(f"{prefix}-{i}")
            i += 1


async def queue_work(storage: FileStorage, concurrency: str, visibility: str = "30") -> None:
    """Run a Queue worker until a line arrives on stdin; print each job id it executes."""
    queue: Queue[dict[str, int], int] = Queue(
        storage, concurrency=int(concurrency), block_timeout=0.5, visibility_timeout=float(visibility)
    )

    @queue.execute
    async def handle(job: Job[dict[str, int]]) -> int:
        say(job.id)
        return job.payload["n"]

    async with queue:
        say("ready")
        await asyncio.to_thread(sys.stdin.readline)


async def reaper(storage: FileStorage, lock_ttl: str, interval: str) -> None:
    """Run a Reaper with leader election until killed; print each leadership change with its time."""
    election = LeaderElection(
        lock_ttl=float(lock_ttl), renew_interval=float(interval), retry_interval=float(interval)
    )
    reaper = Reaper(storage, leader_election=election)
    reaper.on("leadership_acquired", lambda: say({"event": "leader", "t": time.time()}))
    reaper.on("leadership_lost", lambda: say({"event": "lost", "t": time.time()}))
    async with reaper:
        say("ready")
        await asyncio.Event().wait()


async def hold_job_lock(storage: FileStorage, job_id: str) -> None:
    """Hold the lock of ``job_id``'s stripe from one stdin line to the next, as a worker in the middle of a change.

    Prints ``ready`` once connected, ``held`` once it holds the lock (the
    parent may then freeze it), ``released`` after; then waits until killed.
    """
    space = await storage._space()
    say("ready")
    await asyncio.to_thread(sys.stdin.readline)
    with space.locks.hold(encode_key(job_id)):
        say("held")
        await asyncio.to_thread(sys.stdin.readline)
    say("released")
    await asyncio.Event().wait()


COMMANDS: dict[str, Callable[..., Awaitable[None]]] = {
    "enqueue_same": enqueue_same,
    "claim_all": claim_all,
    "wait_one": wait_one,
    "produce": produce,
    "work": work,
    "register": register,
    "queue_produce": queue_produce,
    "queue_feed": queue_feed,
    "queue_work": queue_work,
    "reaper": reaper,
    "hold_job_lock": hold_job_lock,
}


async def main(command: str, root: str, *args: str) -> None:
    """ROOT is a directory, or a file:// URL to pass options."""
    storage = FileStorage.from_url(root) if root.startswith("file:") else FileStorage(root)
    async with storage:
        await COMMANDS[command](storage, *args)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
