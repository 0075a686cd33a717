"""FileStorage shared by real processes: dedup, exclusive claims, FIFO, wake-up latency, idle CPU."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from jobqueue import JobState
from jobqueue_conformance import wait_until
from jobqueue_file import FileStorage

pytestmark = pytest.mark.file

PROCS = Path(__file__).with_name("file_procs.py")


class Child:
    """One ``file_procs.py`` process, talking JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, command: str, root: Path | str, *args: str) -> Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(PROCS),
            command,
            str(root),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def read(self, timeout: float = 30.0) -> Any:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        assert line, f"child exited early with code {await self.proc.wait()}"
        return json.loads(line)

    async def ready(self) -> None:
        assert await self.read() == "ready"

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    async def finish(self) -> None:
        assert await asyncio.wait_for(self.proc.wait(), 30) == 0


async def start_all(command: str, root: Path | str, args: list[tuple[str, ...]]) -> list[Child]:
    children = [await Child.start(command, root, *arg) for arg in args]
    for child in children:
        await child.ready()
    for child in children:
        child.go()
    return children


async def test_one_id_enqueued_by_many_processes_is_accepted_exactly_once(tmp_path: Path) -> None:
    children = await start_all("enqueue_same", tmp_path, [("150",)] * 4)
    accepted: Counter[str] = Counter()
    for child in children:
        accepted.update(await child.read())
        await child.finish()
    assert accepted == Counter({f"job-{i}": 1 for i in range(150)}), "each id must be accepted once"


async def test_claims_from_many_processes_never_give_a_job_to_two_workers(tmp_path: Path) -> None:
    ids = [f"job-{i}" for i in range(300)]
    async with FileStorage(tmp_path) as storage:
        for job_id in ids:
            assert (await storage.enqueue(job_id, b"x")).accepted
    children = await start_all("claim_all", tmp_path, [(f"worker-{n}",) for n in range(4)])
    claimed: Counter[str] = Counter()
    per_worker = []
    for child in children:
        got = await child.read()
        per_worker.append(len(got))
        claimed.update(got)
        await child.finish()
    assert claimed == Counter(dict.fromkeys(ids, 1)), "every job claimed once, none twice"
    assert sum(1 for n in per_worker if n > 0) >= 2, f"the work was not shared: {per_worker}"
    async with FileStorage(tmp_path) as storage:
        counts = await storage.counts()
    assert counts[JobState.COMPLETED] == len(ids)


async def test_fifo_order_holds_across_processes(tmp_path: Path) -> None:
    (producer,) = await start_all("enqueue_same", tmp_path, [("40",)])
    assert len(await producer.read()) == 40
    await producer.finish()
    async with FileStorage(tmp_path) as storage:
        order = []
        while claims := await storage.dequeue("w", lease_ms=30_000, timeout_ms=0, limit=3):
            order += [claim.id for claim in claims]
    assert order == [f"job-{i}" for i in range(40)]


async def test_a_blocked_dequeue_wakes_soon_after_an_enqueue_in_another_process(tmp_path: Path) -> None:
    latencies = []
    async with FileStorage(tmp_path) as storage:
        for round_ in range(5):
            waiter = await Child.start("wait_one", tmp_path, "10000")
            await waiter.ready()
            await storage.enqueue(f"wake-{round_}", b"x")
            enqueued_at = time.time()
            report = await waiter.read()
            await waiter.finish()
            assert report["ids"] == [f"wake-{round_}"]
            latencies.append(report["woke_at"] - enqueued_at)
    print(f"cross-process wake latency (s): {[round(x, 4) for x in latencies]}")
    assert statistics.median(latencies) < 0.05, f"wake latencies {latencies}"
    assert max(latencies) < 0.2, f"wake latencies {latencies}"


async def test_a_blocked_dequeue_uses_almost_no_cpu(tmp_path: Path) -> None:
    waiter = await Child.start("wait_one", tmp_path, "1000")
    await waiter.ready()
    report = await waiter.read()
    await waiter.finish()
    print(f"idle blocked dequeue: {report['cpu']:.4f} s CPU over {report['wall']:.2f} s")
    assert report["ids"] == []
    assert report["wall"] >= 0.9, "the dequeue returned before its timeout"
    assert report["cpu"] < 0.05 * report["wall"], f"a waiting dequeue burns CPU: {report}"


async def test_the_registration_of_a_killed_worker_is_deleted_by_another_process_unasked(
    tmp_path: Path,
) -> None:
    registration = tmp_path / "default" / "workers" / "doomed"
    async with FileStorage(tmp_path):  # a process that only has the root open: it never lists workers
        child = await Child.start("register", tmp_path, "doomed", "500")
        await child.ready()
        child.proc.kill()
        await child.proc.wait()
        assert registration.exists()

        async def gone() -> bool:
            return not registration.exists()

        # The ttl (0.5 s), then at most one sweep interval (1 s) for a process that learns of it late.
        await wait_until(gone, message="a dead worker's registration outlived its ttl", timeout=5)


@pytest.mark.slow
@pytest.mark.timeout(400)  # ~20 s on an idle 2-core machine; minutes when other suites share the disk
async def test_queues_in_many_processes_run_every_job_exactly_once(tmp_path: Path) -> None:
    """4 producer and 4 worker processes share one directory: 10,000 jobs, none lost, none run twice."""
    url = f"file://{tmp_path}?durable=false"  # fsync is not what this checks; renames and locks are
    producers, per_producer = 4, 2_500
    total = producers * per_producer
    workers = [await Child.start("queue_work", url, "8") for _ in range(4)]
    for worker in workers:
        await worker.ready()
    executed: Counter[str] = Counter()
    all_ran = asyncio.Event()

    async def collect(worker: Child) -> None:
        assert worker.proc.stdout is not None
        while line := await worker.proc.stdout.readline():
            executed[json.loads(line)] += 1
            if executed.total() >= total:
                all_ran.set()

    collectors = [asyncio.create_task(collect(worker)) for worker in workers]
    started = time.monotonic()
    feeders = await start_all("queue_produce", url, [(f"p{n}", str(per_producer)) for n in range(producers)])
    for feeder in feeders:
        assert await feeder.read(timeout=300) == "done"
        await feeder.finish()
    await asyncio.wait_for(all_ran.wait(), 300)
    async with FileStorage(tmp_path) as storage:

        async def all_completed() -> bool:
            return (await storage.counts())[JobState.COMPLETED] == total

        await wait_until(all_completed, message="not every job completed", timeout=30, interval=0.2)
    elapsed = time.monotonic() - started
    for worker in workers:
        worker.go()
    await asyncio.gather(*collectors)
    for worker in workers:
        await worker.finish()
    print(
        f"{total} jobs through 4 producer and 4 worker processes in {elapsed:.1f}s ({total / elapsed:.0f}/s)"
    )
    expected = {f"p{n}-{i}" for n in range(producers) for i in range(per_producer)}
    assert set(executed) == expected, "a job was lost"
    twice = [job_id for job_id, runs in executed.items() if runs > 1]
    assert not twice, f"jobs ran twice without any crash: {twice[:10]}"
