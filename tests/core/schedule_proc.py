"""A worker process for the multi-process schedule test: ``python schedule_proc.py URL LOG``.

It runs a queue with the schedule ``beat`` (every 0.5 s) and a reaper, and
appends one line per fact to LOG with a single ``write`` (O_APPEND), so lines
of several processes never mix and a SIGKILL loses nothing written:
``queued <job id> <pid>`` when this process's enqueue of a tick was accepted,
``ran <job id> <pid>`` when its handler ran one. SIGTERM stops it gracefully.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from jobqueue import Job, Queue, Reaper, storage_from_url


async def main(url: str, log: str) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    pid = os.getpid()

    def note(what: str, job_id: str) -> None:
        os.write(fd, f"{what} {job_id} {pid}\n".encode())

    storage = storage_from_url(url)
    queue: Queue[Any, None] = Queue(storage, visibility_timeout=2, block_timeout=0.5)

    @queue.execute
    async def handle(job: Job[Any]) -> None:
        note("ran", job.id)

    queue.on("enqueued", lambda job_id: note("queued", job_id))
    queue.schedule("beat", every=0.5)
    reaper = Reaper(storage, visibility_timeout=2, leader_election=None)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with queue, reaper:
        note("started", "-")
        await stop.wait()
    note("stopped", "-")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
