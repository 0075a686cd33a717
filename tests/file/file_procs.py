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

from jobqueue_file import FileStorage


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


COMMANDS = {
    "enqueue_same": enqueue_same,
    "claim_all": claim_all,
    "wait_one": wait_one,
    "produce": produce,
    "work": work,
}


async def main(command: str, root: str, *args: str) -> None:
    async with FileStorage(root) as storage:
        await COMMANDS[command](storage, *args)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
