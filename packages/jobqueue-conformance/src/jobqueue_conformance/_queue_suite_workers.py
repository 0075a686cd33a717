"""Queue suite: concurrency, leases, stalls and the reaper, leader election, graceful stop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from jobqueue import Job, JobState, Reaper
from jobqueue.storage import Capability, Storage, capabilities, now_ms

from ._helpers import CLOCK_SKEW_MS, require_leader_lock, require_monitoring, wait_until
from ._queue_suite_base import MakeQueue, MakeReaper, QueueSuiteBase, Recorder, fast_election
from ._queue_suite_dedup import _state_is, _true

__all__ = ["WorkersSuite"]

LONG_JOB_LEASE_MS = 1_000
"""The lease of the long-job test: a heartbeat every third of it, so a stall under 0.6 s is no expiry."""

RECOVERY_SLACK_MS = 1_500
"""Extra time, past the rule's one second, a loaded two-core machine may need to observe a recovery."""


class WorkersSuite(QueueSuiteBase):
    """Workers, leases and the reaper."""

    async def test_concurrency_runs_jobs_in_parallel(self, make_queue: MakeQueue) -> None:
        queue = make_queue(concurrency=4)
        active = 0
        peak = 0

        @queue.execute
        async def handler(job: Job[Any]) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.1)
            active -= 1

        async with queue:
            await asyncio.gather(*(queue.enqueue_and_wait(f"c{i}", None, timeout=10) for i in range(12)))
        assert peak == 4, f"rule: a worker runs up to `concurrency` jobs at once (peak {peak})"

    async def test_long_job_keeps_its_lease(
        self, make_queue: MakeQueue, make_reaper: MakeReaper, storage: Storage
    ) -> None:
        # A 1 s lease renewed every third of it: a late heartbeat on a loaded machine is not a stall.
        lease_ms = LONG_JOB_LEASE_MS
        queue = make_queue(visibility_timeout=lease_ms / 1000)
        runs: list[int] = []
        stalled = Recorder()

        @queue.execute
        async def long(job: Job[Any]) -> str:
            runs.append(job.attempt)
            # Runs until its lease was renewed two leases past the first. The outcome is returned and
            # asserted below: a failed check in here would fail the job, not the test.
            record = await storage.get(job.id)
            first_lease = record.lease_until if record is not None else None
            if first_lease is None:
                return "no lease"
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while loop.time() < deadline:
                current = await storage.get(job.id)
                if current is not None and (current.lease_until or 0) >= first_lease + 2 * lease_ms:
                    return "ok"
                await asyncio.sleep(0.05)
            return "lease not renewed"

        reaper = make_reaper(visibility_timeout=lease_ms / 1000)
        stalled.watch(reaper, "stalled")
        async with queue, reaper:
            assert await queue.enqueue_and_wait("long", None, timeout=45) == "ok", (
                "rule: a running job's lease is renewed, and a job longer than visibility_timeout completes"
            )
        assert runs == [1], "rule: a running job's lease is renewed, so it is never stolen"
        assert stalled.seen == [], "rule: a live worker's job is never reported stalled"

    async def test_stalled_job_is_recovered(
        self, make_queue: MakeQueue, make_reaper: MakeReaper, storage: Storage
    ) -> None:
        async with make_queue() as producer:
            await producer.enqueue("orphan", {"n": 1})
        # a worker that claims and then dies: it never renews nor finishes
        claims = await storage.dequeue("dead-worker", lease_ms=300, timeout_ms=1000)
        assert [c.id for c in claims] == ["orphan"], "rule: dequeue claims the only ready job"
        reaper = make_reaper(visibility_timeout=0.3)
        events = Recorder()
        events.watch(reaper, "stalled")
        worker = make_queue()
        attempts: list[int] = []

        @worker.execute
        async def handler(job: Job[Any]) -> str:
            attempts.append(job.attempt)
            return "recovered"

        async with reaper, worker:
            await wait_until(
                lambda: _state_is(worker, "orphan", JobState.COMPLETED),
                message="rule: the reaper requeues a job whose lease expired",
            )
        assert events.seen == [("stalled", ("orphan", "dead-worker"))], (
            "rule: a stalled event names job and worker"
        )
        assert attempts == [2], "rule: the recovered run is the job's second attempt"
        assert not await storage.complete("orphan", "dead-worker", b"late", 1000), (
            "rule: the dead worker's late finish is refused"
        )

    @pytest.mark.parametrize("order", ["reaper-first", "claim-first"])
    async def test_a_stalled_job_is_recovered_at_its_own_lease_deadline(
        self, make_queue: MakeQueue, storage: Storage, order: str
    ) -> None:
        """A Reaper with every default (visibility_timeout 30 s, leader election) and a 0.5 s lease.

        Bound: recovered by the lease deadline + 1 s (the rule) + RECOVERY_SLACK_MS (a loaded machine),
        2.5 s past the deadline in all, far below the 30 s a visibility-timeout scan would take.
        """
        async with make_queue() as producer:
            await producer.enqueue("orphan", {"n": 1})
        # every default; leader election needs the LeaderLock capability (without it, a lone reaper acts)
        has_lock = Capability.LEADER_LOCK in capabilities(storage)
        reaper = Reaper(storage) if has_lock else Reaper(storage, leader_election=None)
        async with reaper:
            if order == "reaper-first":
                await wait_until(lambda: _true(reaper.is_leader), message="the only reaper becomes leader")
            # a worker that claims with a 0.5 s lease and dies: it never renews nor finishes
            claims = await storage.dequeue("dead-worker", lease_ms=500, timeout_ms=1000)
            assert [c.id for c in claims] == ["orphan"], "rule: dequeue claims the only ready job"
            record = await storage.get("orphan")
            assert record is not None and record.lease_until is not None, "rule: a claimed job has a lease"
            deadline = record.lease_until
            recovered_at: list[int] = []

            async def recovered() -> bool:
                current = await storage.get("orphan")
                if current is not None and current.state is JobState.QUEUED:
                    recovered_at.append(now_ms())
                return bool(recovered_at)

            rule = "rule: a stalled job is recovered at its own lease deadline plus at most one second"
            await wait_until(recovered, message=rule, timeout=(500 + 1_000 + RECOVERY_SLACK_MS) / 1000 + 1)
        late = recovered_at[0] - deadline
        assert late <= 1_000 + RECOVERY_SLACK_MS, (
            f"{rule}, whatever the reaper's visibility_timeout (recovered {late} ms after the deadline; "
            f"bound 1 s + {RECOVERY_SLACK_MS} ms of slack)"
        )

    async def test_one_leader_among_reapers(self, make_reaper: MakeReaper, storage: Storage) -> None:
        require_leader_lock(storage)
        reapers = [make_reaper(leader_election=fast_election(), visibility_timeout=0.3) for _ in range(3)]
        for reaper in reapers:
            await reaper.start()
        await wait_until(
            lambda: _true(sum(r.is_leader for r in reapers) == 1), message="rule: one reaper becomes leader"
        )
        # A leader held up past its lock steps down before another can take it, so never two at once.
        for _ in range(50):
            assert sum(r.is_leader for r in reapers) <= 1, "rule: at most one reaper leads at any moment"
            await asyncio.sleep(0.01)
        await wait_until(
            lambda: _true(sum(r.is_leader for r in reapers) == 1), message="rule: one reaper leads"
        )
        leader = next(r for r in reapers if r.is_leader)
        await leader.stop()
        await wait_until(
            lambda: _true(sum(r.is_leader for r in reapers if r is not leader) == 1),
            message="rule: another reaper takes over when the leader stops",
            timeout=2.0,
        )

    async def test_leader_that_dies_is_replaced_within_lock_ttl(
        self, make_reaper: MakeReaper, storage: Storage
    ) -> None:
        lock = require_leader_lock(storage)
        assert await lock.acquire_lock("reaper", "crashed-reaper", 600), (
            "rule: a free lock can be acquired (by a reaper that then dies)"
        )
        reaper = make_reaper(leader_election=fast_election(), visibility_timeout=0.3)
        await reaper.start()
        await asyncio.sleep(0.2)
        assert not reaper.is_leader, "rule: a live lock of another owner is respected"
        await wait_until(
            lambda: _true(reaper.is_leader),
            message="rule: the lock of a dead leader lapses after its TTL and is taken over",
            timeout=2.0,
        )

    async def test_graceful_stop_lets_running_jobs_finish(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        started = asyncio.Event()

        @queue.execute
        async def handler(job: Job[Any]) -> str:
            started.set()
            await asyncio.sleep(0.3)
            return "finished"

        await queue.start()
        await queue.enqueue("g", None)
        async with asyncio.timeout(5):
            await started.wait()
        await queue.stop(timeout=5)
        async with make_queue() as reader:
            assert await reader.get_result("g") == "finished", "rule: stop waits for running jobs"

    async def test_stop_timeout_requeues_unfinished_jobs(
        self, make_queue: MakeQueue, storage: Storage
    ) -> None:
        queue = make_queue()
        started = asyncio.Event()

        @queue.execute
        async def handler(job: Job[Any]) -> None:
            started.set()
            await asyncio.sleep(60)

        await queue.start()
        await queue.enqueue("stuck", None)
        async with asyncio.timeout(5):
            await started.wait()
        await queue.stop(timeout=0.1)
        record = await storage.get("stuck")
        assert record is not None and record.state is JobState.QUEUED, "rule: stop requeues unfinished jobs"
        second = make_queue()
        second.execute(lambda job: job.attempt)
        async with second:
            await wait_until(
                lambda: _state_is(second, "stuck", JobState.COMPLETED),
                message="rule: a requeued job runs on another worker",
            )
            assert await second.get_result("stuck") == 1, "rule: a job given back at stop keeps its attempt"

    async def test_heartbeat_keeps_the_worker_registered(
        self, make_queue: MakeQueue, storage: Storage
    ) -> None:
        monitoring = require_monitoring(storage)
        queue = make_queue(visibility_timeout=0.3)
        queue.execute(lambda job: None)
        async with queue:
            started = now_ms()

            async def renewed() -> bool:  # registered until three TTLs past the start, by heartbeats
                workers = {w.id: w for w in await monitoring.list_workers()}
                worker = workers.get(queue.worker_id)
                return worker is not None and worker.expires_at >= started + 3 * 300

            await wait_until(renewed, message="rule: a running worker stays registered", timeout=30)
        workers_after = {w.id for w in await monitoring.list_workers()}
        assert queue.worker_id not in workers_after, "rule: a stopped worker unregisters"

    async def test_extend_lease(self, make_queue: MakeQueue, storage: Storage) -> None:
        queue = make_queue(visibility_timeout=5)
        leases: list[int] = []

        @queue.execute
        async def handler(job: Job[Any]) -> bool:
            ok = await job.extend_lease(120)
            record = await storage.get(job.id)
            if record is not None and record.lease_until is not None:
                leases.append(record.lease_until - now_ms())
            return ok

        async with queue:
            assert await queue.enqueue_and_wait("x", None, timeout=5) is True, "rule: extend_lease succeeds"
        assert leases and leases[0] > 120_000 - CLOCK_SKEW_MS, "rule: extend_lease moves the lease deadline"

    async def test_automatic_renewal_never_shortens_an_extended_lease(
        self, make_queue: MakeQueue, storage: Storage
    ) -> None:
        """``extend_lease(120)``, then the worker's own heartbeats (every 0.2 s) must leave that lease alone.

        A second running job, never extended, shows when heartbeats happened:
        its lease moves at each one. Two moves after the extension mean at
        least one whole heartbeat ran after it.
        """
        queue = make_queue(concurrency=2, visibility_timeout=0.6)
        started = {"long": asyncio.Event(), "plain": asyncio.Event()}
        release = asyncio.Event()
        extended: list[bool] = []

        @queue.execute
        async def handler(job: Job[Any]) -> None:
            if job.id == "long":
                extended.append(await job.extend_lease(120))
            started[job.id].set()
            await release.wait()

        async def lease_until(job_id: str) -> int:
            record = await storage.get(job_id)
            assert record is not None and record.lease_until is not None, "rule: a running job has a lease"
            return record.lease_until

        async with queue:
            try:
                await queue.enqueue("long", None)
                await queue.enqueue("plain", None)
                async with asyncio.timeout(10):
                    await asyncio.gather(*(event.wait() for event in started.values()))
                assert extended == [True], "rule: extend_lease succeeds"
                plain = [await lease_until("plain")]

                async def renewed_twice() -> bool:
                    current = await lease_until("plain")
                    if current > plain[-1]:
                        plain.append(current)
                    return len(plain) >= 3

                await wait_until(
                    renewed_twice, message="rule: the worker renews the leases of its running jobs"
                )
                left = await lease_until("long") - now_ms()
            finally:
                release.set()
        assert left > 120_000 - CLOCK_SKEW_MS, (
            "rule: a lease only moves forward: an automatic renewal never shortens a lease that "
            f"extend_lease lengthened ({left} ms left of 120 s)"
        )
