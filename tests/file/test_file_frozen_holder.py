"""A process frozen while it holds a job lock holds up that job only, not the background passes.

The reaper's recovery, the sweep and the repair at ``connect()`` skip a job
whose lock is taken and come back for it later; before, each waited on the
lock, so one frozen process stalled every other job of the pass.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from jobqueue import JobState
from jobqueue.storage import Stalled, now_ms
from jobqueue_conformance import wait_until
from jobqueue_file import FileStorage
from jobqueue_file._locks import BUSY_RETRY_MS, StripeLocks
from jobqueue_file._names import encode_key, processing_entry
from jobqueue_file._records import unpack_record

from tests.file.test_file_processes import Child

pytestmark = pytest.mark.file

BOUND = 15.0  # seconds: generous on a loaded machine; the freeze lasts until the test ends it


def _stripe(key: str) -> int:
    return StripeLocks.stripe(key)


def _on_another_stripe(*taken: str) -> str:
    """A job id whose lock stripe is none of those of the lock keys ``taken``."""
    stripes = {_stripe(key) for key in taken}
    return next(f"other-{i}" for i in range(1000) if _stripe(encode_key(f"other-{i}")) not in stripes)


@asynccontextmanager
async def _children() -> AsyncIterator[list[Child]]:
    """Child processes killed on the way out (before the parent's storage disconnects)."""
    children: list[Child] = []
    try:
        yield children
    finally:
        for child in children:
            if child.proc.returncode is None:
                child.proc.kill()
                await child.proc.wait()


async def _freeze_holding(holder: Child) -> None:
    holder.go()
    assert await holder.read() == "held"
    holder.proc.send_signal(signal.SIGSTOP)


async def _thaw_and_release(holder: Child) -> None:
    holder.proc.send_signal(signal.SIGCONT)
    holder.go()
    assert await holder.read() == "released"


async def test_a_frozen_lock_holder_holds_up_only_its_own_stalled_job(tmp_path: Path) -> None:
    """Job A's lock is held by a frozen process; B, on another stripe, is recovered on time all the same.

    Before, the leader's pass waited on A's lock and never reached B.
    """
    lease_ms = 3000  # A must still be running when its holder freezes
    frozen_id = "frozen"
    other_id = _on_another_stripe(encode_key(frozen_id), "worker:" + encode_key("gone"))
    async with FileStorage(tmp_path) as storage, _children() as children:
        reaper = await Child.start("reaper", tmp_path, "30", "0.25")
        children.append(reaper)
        await reaper.ready()
        assert (await reaper.read())["event"] == "leader"
        holder = await Child.start("hold_job_lock", tmp_path, frozen_id)
        children.append(holder)
        await holder.ready()

        for job_id in (frozen_id, other_id):
            await storage.enqueue(job_id, b"x")
        claims = await storage.dequeue("gone", lease_ms=lease_ms, timeout_ms=0, limit=2)
        assert sorted(claim.id for claim in claims) == sorted([frozen_id, other_id])
        stalls_at = time.monotonic() + lease_ms / 1000
        await _freeze_holding(holder)

        async def queued(job_id: str) -> bool:
            record = await storage.get(job_id)
            return record is not None and record.state is JobState.QUEUED

        await wait_until(
            lambda: queued(other_id),
            message=f"the stalled job on a free stripe was not recovered within {BOUND} s of its lease",
            timeout=lease_ms / 1000 + BOUND,
        )
        print(f"recovered {time.monotonic() - stalls_at:.2f} s after its lease ran out")
        record = await storage.get(frozen_id)
        assert record is not None and record.state is JobState.PROCESSING, "its lock is held: left for later"

        await _thaw_and_release(holder)
        await wait_until(
            lambda: queued(frozen_id),
            message="the job whose lock was held is recovered once it is free",
            timeout=BOUND,
        )


async def test_the_sweep_deletes_what_expired_past_a_frozen_lock_holder(tmp_path: Path) -> None:
    """A's expired record has its lock held by a frozen process; B's, which expires later, goes on time."""
    frozen_id = "frozen"
    other_id = _on_another_stripe(encode_key(frozen_id), "worker:" + encode_key("w"))
    jobs = tmp_path / "default" / "jobs"
    async with FileStorage(tmp_path) as storage, _children() as children:
        holder = await Child.start("hold_job_lock", tmp_path, frozen_id)
        children.append(holder)
        await holder.ready()
        for job_id in (frozen_id, other_id):
            await storage.enqueue(job_id, b"x")
            assert await storage.dequeue("w", lease_ms=60_000, timeout_ms=0)
        assert await storage.complete(frozen_id, "w", b"r", 1500)  # expires first: swept first
        assert await storage.complete(other_id, "w", b"r", 2000)
        await _freeze_holding(holder)

        async def gone(job_id: str) -> bool:
            return not (jobs / encode_key(job_id)).exists()

        await wait_until(
            lambda: gone(other_id),
            message="an expired record on a free stripe was not swept",
            timeout=2 + BOUND,
        )
        assert not await gone(frozen_id), "its lock is held: left for later"

        await _thaw_and_release(holder)
        await wait_until(
            lambda: gone(frozen_id), message="the record is swept once its lock is free", timeout=BOUND
        )


async def test_connect_does_not_wait_on_a_frozen_lock_holder_and_repairs_later(tmp_path: Path) -> None:
    """A claim cut off between its two steps left A's entry in ``processing/``, its record saying queued.

    A process that connects while A's lock is held by a frozen process starts at once (before, it
    waited at ``connect()`` for as long as the freeze lasted), and puts A back in the queue later.
    """
    job_id = "half-claimed"
    key = encode_key(job_id)
    space = tmp_path / "default"
    async with FileStorage(tmp_path) as storage, _children() as children:
        holder = await Child.start("hold_job_lock", tmp_path, job_id)
        children.append(holder)
        await holder.ready()  # connected (and repaired) before the damage below

        await storage.enqueue(job_id, b"x")
        stored = unpack_record((space / "jobs" / key).read_bytes(), "record")
        assert stored.entry is not None and stored.entry.startswith("queue/")
        worker_dir = space / "processing" / encode_key("dead")
        worker_dir.mkdir(mode=0o700)
        os.rename(
            space / stored.entry, worker_dir / processing_entry(stored.uid, key)
        )  # the claim's first step
        assert not await storage.dequeue("w", lease_ms=60_000, timeout_ms=0)
        await _freeze_holding(holder)

        started = time.monotonic()
        newcomer = await Child.start("register", tmp_path, "newcomer", "600000")
        children.append(newcomer)
        assert await newcomer.read(timeout=BOUND) == "ready", "connect waited on the frozen holder"
        print(f"connected in {time.monotonic() - started:.2f} s")
        assert not await storage.dequeue("w", lease_ms=60_000, timeout_ms=0), (
            "its lock is held: left for later"
        )

        await _thaw_and_release(holder)
        claimed: list[str] = []

        async def requeued() -> bool:
            claimed.extend(claim.id for claim in await storage.dequeue("w", lease_ms=60_000, timeout_ms=0))
            return bool(claimed)

        await wait_until(
            requeued, message="the half-done claim is repaired once its lock is free", timeout=BOUND
        )
        assert claimed == [job_id]


async def test_recovery_asks_to_be_called_again_soon_for_a_job_it_skipped(tmp_path: Path) -> None:
    """A stalled job whose lock is taken is skipped; the next deadline says to come back within BUSY_RETRY_MS."""
    async with FileStorage(tmp_path) as storage:
        await storage.enqueue("a", b"x")
        assert await storage.dequeue("w", lease_ms=1, timeout_ms=0)

        async def stalled() -> bool:
            record = await storage.get("a")
            return record is not None and record.lease_until is not None and record.lease_until < now_ms()

        await wait_until(stalled, message="the lease never ran out")
        space = await storage._space()
        with space.locks.hold(encode_key("a")):  # this thread holds it: a pass that waited would never return
            async with asyncio.timeout(BOUND):
                recovery = await storage.recover_stalled()
        assert recovery.stalled == []
        assert recovery.next_expiry_ms is not None and recovery.next_expiry_ms <= BUSY_RETRY_MS
        assert (await storage.recover_stalled()).stalled == [Stalled("a", "w")]
