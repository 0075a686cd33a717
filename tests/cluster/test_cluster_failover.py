"""A failover under load: SIGKILL the master of the queue's slot while producers, workers and
waiters run; the replica is promoted and everything carries on.

With ``min_replicas=1`` no acknowledged job may be lost and every waiter must end with its
result. Without it, replication is asynchronous: the test reports how many acknowledged jobs
were lost (the README quotes the figures) and only checks that everything else carries on.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from jobqueue import JobNotFoundError, JobState, JobTimeoutError, Queue, Reaper, StorageError
from jobqueue_conformance import wait_until
from jobqueue_redis import RedisStorage

from tools.clusters import ClusterProcess, key_slot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@dataclass
class Traffic:
    """What the producers and waiters saw."""

    acknowledged: list[str] = field(default_factory=list)  # enqueue returned: the storage has it
    waited: dict[str, int] = field(default_factory=dict)  # waiter id -> the result it got
    gone: list[str] = field(default_factory=list)  # waits that ended with "no such job": lost jobs
    storage_errors: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def _produce(queue: Queue[int, int], traffic: Traffic, name: str) -> None:
    for n in itertools.count():
        if traffic.stop.is_set():
            return
        job_id = f"{name}-{n}"
        while True:  # what an application does on StorageError: send it again (dedup makes it safe)
            try:
                await queue.enqueue(job_id, n)
                break
            except StorageError:
                traffic.storage_errors += 1
                await asyncio.sleep(0.05)
        traffic.acknowledged.append(job_id)
        await asyncio.sleep(0.005)


async def _wait_for_results(queue: Queue[int, int], traffic: Traffic, name: str) -> None:
    for n in itertools.count():
        if traffic.stop.is_set():
            return
        job_id = f"{name}-{n}"
        while True:
            try:
                traffic.waited[job_id] = await queue.enqueue_and_wait(job_id, n, timeout=60)
                break
            except JobNotFoundError:
                traffic.gone.append(job_id)
                break
            except StorageError:
                traffic.storage_errors += 1
                await asyncio.sleep(0.05)


async def _run_failover(cluster: ClusterProcess, min_replicas: int) -> tuple[Traffic, list[str]]:
    """Traffic, a crash of the queue's master, more traffic; the acknowledged ids without a record."""
    storage = RedisStorage(cluster.url, prefix=f"f{uuid.uuid4().hex[:8]}", min_replicas=min_replicas)
    queue: Queue[int, int] = Queue(storage=storage, concurrency=8, visibility_timeout=3.0, block_timeout=1.0)
    queue.execute(lambda job: job.payload + 1000)
    reaper = Reaper(storage=storage, visibility_timeout=3.0)
    traffic = Traffic()
    slot = key_slot(storage.keys.base)
    async with storage, queue, reaper:
        tasks = [asyncio.create_task(_produce(queue, traffic, f"p{i}")) for i in range(2)]
        tasks += [asyncio.create_task(_wait_for_results(queue, traffic, f"w{i}")) for i in range(4)]
        await wait_until(lambda: _at_least(traffic, 100), message="traffic before the crash", timeout=60)
        old = await asyncio.to_thread(cluster.kill_master, slot)
        await asyncio.to_thread(cluster.wait_promoted, slot, old)
        # The new master has no replica until the old one comes back as its replica: until
        # then a write that must reach a replica fails with StorageError, as it should.
        await asyncio.to_thread(old.start)
        await asyncio.to_thread(cluster.wait_ready)
        before = len(traffic.acknowledged)
        await wait_until(
            lambda: _at_least(traffic, before + 100), message="traffic after failover", timeout=60
        )
        traffic.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 90)  # every waiter ends

        async def lost_or_done() -> bool:
            counts = await storage.counts()
            return counts[JobState.QUEUED] + counts[JobState.PROCESSING] + counts[JobState.FAILING] == 0

        await wait_until(lost_or_done, message="every surviving job is processed", timeout=60, interval=0.2)
        records = await storage.get_many(traffic.acknowledged)
        lost = [
            job_id for job_id, record in zip(traffic.acknowledged, records, strict=True) if record is None
        ]
        not_completed = [r.id for r in records if r is not None and r.state is not JobState.COMPLETED]
        assert not not_completed, f"jobs that survived must complete: {not_completed[:10]}"
    return traffic, lost


async def _at_least(traffic: Traffic, n: int) -> bool:
    return len(traffic.acknowledged) >= n and len(traffic.waited) >= 4


async def test_with_min_replicas_a_failover_loses_no_acknowledged_job(
    private_cluster: Callable[..., ClusterProcess],
) -> None:
    cluster = await asyncio.to_thread(private_cluster)
    traffic, lost = await _run_failover(cluster, min_replicas=1)
    assert lost == [], f"{len(lost)} acknowledged job(s) lost despite min_replicas=1: {lost[:10]}"
    assert traffic.gone == [], f"waiters whose job vanished: {traffic.gone}"
    assert all(result == int(job_id.split("-")[1]) + 1000 for job_id, result in traffic.waited.items())


async def test_without_min_replicas_the_loss_is_reported(
    private_cluster: Callable[..., ClusterProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    cluster = await asyncio.to_thread(private_cluster)
    try:
        traffic, lost = await _run_failover(cluster, min_replicas=0)
    except JobTimeoutError as exc:  # a waiter whose job was lost waits in vain: that is the loss
        pytest.fail(f"a waiter did not end: {exc}")
    with capsys.disabled():
        print(
            f"\nfailover without min_replicas: {len(lost)} of {len(traffic.acknowledged)} acknowledged "
            f"jobs lost, {len(traffic.gone)} of {len(traffic.waited) + len(traffic.gone)} waits ended "
            f"with the job gone, {traffic.storage_errors} calls failed with StorageError during the switch"
        )
