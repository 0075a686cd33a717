"""Leader election between reaper processes on one FileStorage root, with the leader frozen."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
from jobqueue.storage import now_ms
from jobqueue_conformance import wait_until

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
    """The leading reaper is frozen (SIGSTOP, as a paused VM) longer than its lock lives.

    A second reaper takes the lapsed lock; that one is killed; the first one thaws and
    leads again, and must say so: it lost the lock meanwhile. Before, it kept believing
    it led throughout and reported nothing, so the dead leader looked like the holder
    until some later change (16-39 s in the chaos runs).
    """
    lock_file = tmp_path / "default" / "locks" / "leader-reaper"
    children: list[Child] = []
    try:
        first = await Child.start("reaper", tmp_path, LOCK_TTL, INTERVAL)
        children.append(first)
        await first.ready()
        assert (await _event(first, 30, "the only reaper"))["event"] == "leader"
        second = await Child.start("reaper", tmp_path, LOCK_TTL, INTERVAL)
        children.append(second)
        await second.ready()
        first.proc.send_signal(signal.SIGSTOP)

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
        first.proc.send_signal(signal.SIGCONT)

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
