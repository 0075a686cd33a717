"""Leader election between reaper processes on one FileStorage root, with a frozen worker in the way."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
from jobqueue.storage import now_ms
from jobqueue_conformance import wait_until
from jobqueue_file import FileStorage

from tests.file.test_file_processes import Child

pytestmark = pytest.mark.file

LOCK_TTL = "1.0"
INTERVAL = "0.25"


async def _event(reaper: Child, timeout: float, what: str) -> Any:
    try:
        return await reaper.read(timeout=timeout)
    except TimeoutError:
        pytest.fail(f"{what}: no leadership change reported within {timeout} s")


async def test_a_reaper_held_up_past_its_lock_reports_the_loss_and_the_takeover(tmp_path: Path) -> None:
    """A frozen worker holds a job lock, so each leader's pass waits on it longer than the lock lives.

    The first leader's lock lapses and a second reaper takes it; that one is killed; the
    worker goes. The first reaper leads again, and must say so: it lost the lock meanwhile.
    Before, it kept believing it led throughout and reported nothing, so the dead leader looked
    like the holder until some later change (16-39 s in the chaos runs).
    """
    lock_file = tmp_path / "default" / "locks" / "leader-reaper"
    children: list[Child] = []
    try:
        async with FileStorage(tmp_path) as storage:
            await storage.enqueue("long", b"x")
            assert await storage.dequeue("w", lease_ms=600_000, timeout_ms=0)  # in processing/, not stalled
            first = await Child.start("reaper", tmp_path, LOCK_TTL, INTERVAL)
            children.append(first)
            await first.ready()
            assert (await _event(first, 30, "the only reaper"))["event"] == "leader"
            second = await Child.start("reaper", tmp_path, LOCK_TTL, INTERVAL)
            children.append(second)
            await second.ready()
            worker = await Child.start("hold_job_lock", tmp_path, "long")
            children.append(worker)
            await worker.ready()
            worker.proc.send_signal(signal.SIGSTOP)

            took = await _event(second, 30, "the follower, once the leader's lock lapsed")
            assert took["event"] == "leader"
            second.proc.kill()
            killed_at = time.time()
            await second.proc.wait()

            def expiry() -> int:
                _, expires_at = msgpack.unpackb(lock_file.read_bytes())
                assert isinstance(expires_at, int)
                return expires_at

            async def lapsed() -> bool:  # the dead leader's lock, which it could not renew
                return now_ms() > expiry() + 50

            await wait_until(lapsed, message="the killed leader's lock never lapsed", timeout=30)
            worker.proc.kill()
            await worker.proc.wait()

            events = [await _event(first, 10, "the surviving reaper") for _ in range(2)]
            assert [e["event"] for e in events] == ["lost", "leader"], events
            took_over = events[1]["t"] - killed_at
            print(f"takeover reported {took_over:.2f} s after the leader was killed")
            assert took_over < 10
    finally:
        for child in children:
            if child.proc.returncode is None:
                child.proc.kill()
                await child.proc.wait()
