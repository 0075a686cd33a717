"""SIGKILL producers and workers at random points: the directory stays consistent and no job is lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
from pathlib import Path

import pytest
from jobqueue import Job, JobState, Queue, Reaper
from jobqueue_conformance import wait_until
from jobqueue_file import FileStorage
from jobqueue_file._names import EXPIRY_PREFIX, PROCESSING_PREFIX, QUEUE_PREFIX, SCHEDULED_PREFIX, parse_entry
from jobqueue_file._records import Stored, unpack_record

pytestmark = [pytest.mark.file, pytest.mark.slow]

PROCS = Path(__file__).with_name("file_procs.py")
ROUNDS = 20


async def spawn(command: str, root: Path, *args: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROCS),
        command,
        str(root),
        *args,
        stdin=asyncio.subprocess.PIPE,  # a worker runs until its stdin says otherwise
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert json.loads(await asyncio.wait_for(proc.stdout.readline(), 30)) == "ready"
    return proc


async def kill_and_collect(proc: asyncio.subprocess.Process) -> list[str]:
    """SIGKILL the process; return every id it reported before it died."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)
    assert proc.stdout is not None
    out = await proc.stdout.read()
    await proc.wait()
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def read_layout(root: Path) -> tuple[dict[str, Stored], list[tuple[str, str, str]]]:
    """Every record (each must decode) and every entry (path, uid, key) of the default namespace."""
    space = root / "default"
    temps = [p for p in space.rglob(".tmp-*")]
    assert not temps, f"temp files survived the repair: {temps}"
    records = {path.name: unpack_record(path.read_bytes(), str(path)) for path in (space / "jobs").iterdir()}
    entries = []
    for sub, prefix in (("queue", QUEUE_PREFIX), ("scheduled", SCHEDULED_PREFIX), ("expiry", EXPIRY_PREFIX)):
        for path in (space / sub).iterdir():
            parsed = parse_entry(path.name, prefix)
            assert parsed is not None, f"stray file {path}"
            entries.append((f"{sub}/{path.name}", parsed.uid, parsed.key))
    for worker in (space / "processing").iterdir():
        for path in worker.iterdir():
            parsed = parse_entry(path.name, PROCESSING_PREFIX)
            assert parsed is not None, f"stray file {path}"
            entries.append((f"processing/{worker.name}/{path.name}", parsed.uid, parsed.key))
    return records, entries


def check_invariants(root: Path) -> int:
    """Each job is in exactly one place, the one its record names; return the stray entries.

    Strays are entries no record claims (an enqueue killed between creating
    its entry and its record): harmless, dropped by the first claimer that
    sees them; they may only be in queue/ or scheduled/.
    """
    records, entries = read_layout(root)
    strays = 0
    owned: dict[str, list[str]] = {}
    for path, uid, key in entries:
        stored = records.get(key)
        if stored is None or stored.uid != uid:
            assert not path.startswith("processing/"), f"a processing entry without its record: {path}"
            strays += 1
            continue
        owned.setdefault(key, []).append(path)
    for key, stored in records.items():
        record, where = stored.record, owned.get(key, [])
        assert where == [stored.entry], (
            f"job {record.id!r} ({record.state}) at {where}, record says {stored.entry}"
        )
        assert stored.entry is not None
        if record.state is JobState.PROCESSING:
            assert stored.entry.startswith("processing/")
        if record.state.is_terminal:
            assert stored.entry.startswith("expiry/"), f"finished job {record.id!r} at {stored.entry}"
    return strays


async def test_sigkill_at_random_points_loses_nothing_and_leaves_a_consistent_directory(
    tmp_path: Path,
) -> None:
    """Kill a producer mid-enqueue and a worker holding jobs, 20 times; a reaper then finishes everything."""
    rng = random.Random(os.getpid())
    accepted: set[str] = set()
    started: set[str] = set()
    for round_ in range(ROUNDS):
        producer, worker = await asyncio.gather(
            spawn("queue_feed", tmp_path, f"r{round_}"), spawn("queue_work", tmp_path, "4", "0.3")
        )
        await asyncio.sleep(rng.uniform(0.01, 0.25))  # the random point to kill at
        accepted.update(await kill_and_collect(producer))
        started.update(await kill_and_collect(worker))
    assert len(accepted) > ROUNDS, "the producers were killed before doing anything"
    print(f"{ROUNDS} rounds: {len(accepted)} jobs accepted, {len(started)} started before the kills")

    async with FileStorage(tmp_path) as storage:  # connect() repairs what the kills left half-done
        strays = check_invariants(tmp_path)
        assert strays <= ROUNDS, f"{strays} stray entries for {ROUNDS} killed producers"
        queue: Queue[dict[str, int], int] = Queue(storage, concurrency=8, block_timeout=0.2)

        @queue.execute
        async def handle(job: Job[dict[str, int]]) -> int:
            return job.payload["n"]

        reaper = Reaper(storage, visibility_timeout=0.3, leader_election=None)
        ids = sorted(accepted)
        async with queue, reaper:

            async def all_completed() -> bool:
                records = await storage.get_many(ids)
                return all(r is not None and r.state is JobState.COMPLETED for r in records)

            await wait_until(all_completed, message="accepted jobs did not all complete", timeout=60)
        records = await storage.get_many(ids)
        assert all(r is not None and r.result is not None for r in records)
    check_invariants(tmp_path)
