"""Storage suite, queue group: enqueue with dedup, dequeue, scheduling, release, odd ids."""

from __future__ import annotations

import asyncio

import pytest
from jobqueue import JobState
from jobqueue.storage import Channel, Storage, now_ms

from ._helpers import CLOCK_SKEW_MS, LEASE_MS, LONG_TTL_MS, WAKE_BOUND_S, claim, monitoring_of, next_event

__all__ = ["StorageQueueTests"]

ODD_IDS = {
    "colon": "user:42:profile",
    "space": "with a space",
    "braces": "{prefix}:job",
    "slash": "a/b/c",
    "dotdot": "../../etc/passwd",
    "dots": "..",
    "unicode": "ünïcødé-日本語-🙂",
    "1024-ascii-bytes": "x" * 1024,
    "1024-utf8-bytes": "é" * 512,
}


class StorageQueueTests:
    """``enqueue``, ``dequeue``, ``release``: the queue itself."""

    async def test_enqueue_stores_a_queued_record(self, storage: Storage) -> None:
        before = now_ms()
        outcome = await storage.enqueue("job-1", b"message-1")
        assert outcome.accepted, "rule: enqueue accepts an id that has no record"
        assert outcome.existing is None, "rule: an accepted enqueue reports no existing record"
        record = await storage.get("job-1")
        assert record is not None, "rule: an accepted job is stored"
        assert (record.id, record.message) == ("job-1", b"message-1"), "rule: a record keeps id and message"
        assert record.state == JobState.QUEUED, "rule: a new job is queued"
        assert record.attempts == 0, "rule: a new job has attempts == 0"
        assert record.run_at is None, "rule: a job enqueued without delay is not scheduled"
        assert record.lease_until is None, "rule: a queued job has no lease"
        assert record.expires_at is None, "rule: a queued job does not expire"
        assert abs(record.created_at - before) < CLOCK_SKEW_MS, "rule: created_at is epoch milliseconds"
        assert (record.priority, record.abort_requested, record.progress) == (0, False, None), (
            "rule: a new job has priority 0 (by default), no abort request and no progress"
        )

    async def test_duplicate_enqueue_returns_the_live_record(self, storage: Storage) -> None:
        await storage.enqueue("job-1", b"first")
        outcome = await storage.enqueue("job-1", b"second")
        assert not outcome.accepted, "rule: enqueue of an id with a live record is not accepted"
        assert outcome.existing is not None, "rule: a refused enqueue returns the live record"
        assert outcome.existing.state == JobState.QUEUED, "rule: the returned record shows the job's state"
        assert outcome.existing.message == b"first", "rule: a duplicate enqueue changes nothing"
        record = await storage.get("job-1")
        assert record is not None and record.message == b"first", "rule: a duplicate enqueue changes nothing"
        assert await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0) != [], "rule: the job is queued"
        assert await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0) == [], (
            "rule: a duplicate enqueue does not queue the job twice"
        )

    async def test_duplicate_of_a_processing_job_is_refused(self, storage: Storage) -> None:
        await claim(storage, "job-1")
        outcome = await storage.enqueue("job-1", b"again")
        assert not outcome.accepted, "rule: enqueue of a processing job's id is not accepted"
        assert outcome.existing is not None and outcome.existing.state == JobState.PROCESSING, (
            "rule: a refused enqueue returns the live record in its current state"
        )

    async def test_concurrent_enqueues_of_one_id_accept_exactly_one(self, storage: Storage) -> None:
        outcomes = await asyncio.gather(*(storage.enqueue("same", b"m%d" % i) for i in range(50)))
        accepted = [i for i, outcome in enumerate(outcomes) if outcome.accepted]
        assert len(accepted) == 1, (
            f"rule: enqueue-with-dedup accepts exactly one of concurrent enqueues of one id "
            f"(accepted {len(accepted)} of 50)"
        )
        record = await storage.get("same")
        assert record is not None and record.message == b"m%d" % accepted[0], (
            "rule: enqueue-with-dedup stores the accepted enqueue's message"
        )
        claims = await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0, limit=100)
        assert len(claims) == 1, "rule: enqueue-with-dedup queues the job once"

    async def test_dequeue_is_first_in_first_out(self, storage: Storage) -> None:
        ids = [f"job-{i}" for i in range(10)]
        for job_id in ids:
            await storage.enqueue(job_id, job_id.encode())
        claimed = []
        for _ in ids:
            claims = await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0)
            claimed += [c.id for c in claims]
        assert claimed == ids, "rule: dequeue claims the oldest ready job first (FIFO)"

    async def test_claim_marks_the_job_processing(self, storage: Storage) -> None:
        await storage.enqueue("job-1", b"message-1")
        before = now_ms()
        claims = await storage.dequeue("worker-1", lease_ms=20_000, timeout_ms=0)
        assert len(claims) == 1, "rule: dequeue claims a ready job"
        assert (claims[0].id, claims[0].message, claims[0].attempt) == ("job-1", b"message-1", 1), (
            "rule: a claim carries the id, the message and attempt 1 on the first claim"
        )
        record = await storage.get("job-1")
        assert record is not None and record.state == JobState.PROCESSING, "rule: a claimed job is processing"
        assert record.worker_id == "worker-1", "rule: a claimed job records its worker"
        assert record.attempts == 1, "rule: each claim increments attempts"
        assert record.lease_until is not None, "rule: a claimed job has a lease"
        assert abs(record.lease_until - (before + 20_000)) < CLOCK_SKEW_MS, (
            "rule: lease_until = now + lease_ms"
        )

    async def test_batch_dequeue_claims_up_to_limit_oldest_first(self, storage: Storage) -> None:
        for i in range(5):
            await storage.enqueue(f"job-{i}", b"m")
        first = await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0, limit=3)
        assert [c.id for c in first] == ["job-0", "job-1", "job-2"], (
            "rule: dequeue(limit=n) claims at most n jobs, oldest first"
        )
        rest = await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0, limit=10)
        assert [c.id for c in rest] == ["job-3", "job-4"], "rule: dequeue(limit=n) returns what is ready"

    async def test_dequeue_without_timeout_returns_at_once(self, storage: Storage) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0) == [], (
            "rule: dequeue returns [] when nothing is ready"
        )
        assert loop.time() - start < 0.5, "rule: dequeue(timeout_ms=0) does not wait"

    async def test_dequeue_returns_empty_after_its_timeout(self, storage: Storage) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        claims = await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=150)
        elapsed = loop.time() - start
        assert claims == [], "rule: dequeue returns [] on timeout"
        assert elapsed >= 0.1, (
            f"rule: dequeue waits up to timeout_ms before giving up (waited {elapsed:.3f} s)"
        )
        assert elapsed < 1.5, f"rule: dequeue gives up after timeout_ms (waited {elapsed:.3f} s)"

    async def test_blocking_dequeue_wakes_when_a_job_is_enqueued(self, storage: Storage) -> None:
        loop = asyncio.get_running_loop()
        waiter = asyncio.create_task(storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=10_000))
        await asyncio.sleep(0.05)  # let the dequeue block first; if it has not, the test only gets easier
        assert not waiter.done(), "rule: dequeue waits while nothing is ready"
        start = loop.time()
        await storage.enqueue("job-1", b"m")
        async with asyncio.timeout(5):
            claims = await waiter
        elapsed = loop.time() - start
        assert [c.id for c in claims] == ["job-1"], "rule: a blocked dequeue claims the job that was enqueued"
        assert elapsed < WAKE_BOUND_S, (
            f"rule: a blocked dequeue wakes as soon as a job is enqueued (took {elapsed * 1000:.0f} ms)"
        )

    async def test_blocking_dequeue_wakes_when_a_scheduled_job_falls_due(self, storage: Storage) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await storage.enqueue("job-1", b"m", delay_ms=200)
        claims = await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=10_000)
        elapsed = loop.time() - start
        assert [c.id for c in claims] == ["job-1"], "rule: a blocked dequeue claims a job that falls due"
        assert elapsed < 0.2 + WAKE_BOUND_S, (
            f"rule: a blocked dequeue wakes as soon as a scheduled job falls due (took {elapsed * 1000:.0f} ms)"
        )

    async def test_delayed_job_waits_until_it_is_due(self, storage: Storage) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await storage.enqueue("job-1", b"m", delay_ms=400)
        record = await storage.get("job-1")
        assert record is not None and record.state == JobState.QUEUED, "rule: a delayed job is stored queued"
        assert record.run_at is not None and abs(record.run_at - record.created_at - 400) < 50, (
            "rule: a delayed job has run_at = now + delay_ms"
        )
        if loop.time() - start < 0.3:
            assert await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0) == [], (
                "rule: a scheduled job is not claimed before it is due"
            )
        claims = await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=5_000)
        assert [c.id for c in claims] == ["job-1"], "rule: a scheduled job is claimed once due"
        assert loop.time() - start >= 0.35, "rule: a scheduled job is not claimed before it is due"

    async def test_concurrent_dequeues_claim_each_job_once(self, storage: Storage) -> None:
        ids = {f"job-{i}" for i in range(30)}
        for job_id in sorted(ids):
            await storage.enqueue(job_id, b"m")

        async def drain(worker_id: str) -> list[str]:
            got: list[str] = []
            while claims := await storage.dequeue(worker_id, lease_ms=LEASE_MS, timeout_ms=100, limit=2):
                got += [c.id for c in claims]
            return got

        results = await asyncio.gather(*(drain(f"worker-{i}") for i in range(6)))
        claimed = [job_id for got in results for job_id in got]
        assert sorted(claimed) == sorted(ids), "rule: concurrent dequeues claim every job exactly once"

    async def test_cancelled_job_is_never_claimed(self, storage: Storage) -> None:
        await storage.enqueue("job-a", b"a")
        await storage.enqueue("job-b", b"b")
        assert await storage.cancel("job-a") == JobState.QUEUED, "rule: cancel reports the state it found"
        claims = await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0, limit=10)
        assert [c.id for c in claims] == ["job-b"], "rule: a cancelled job is never claimed"

    async def test_release_puts_the_job_back_at_the_head(self, storage: Storage) -> None:
        await storage.enqueue("job-a", b"a")
        await storage.enqueue("job-b", b"b")
        await storage.dequeue("worker-1", lease_ms=LEASE_MS, timeout_ms=0)
        assert await storage.release("job-a", "worker-1"), "rule: release by the owning worker succeeds"
        record = await storage.get("job-a")
        assert record is not None and record.state == JobState.QUEUED, "rule: a released job is queued"
        assert record.worker_id is None, "rule: a released job has no worker"
        assert record.attempts == 0, "rule: release does not count the attempt"
        claims = await storage.dequeue("worker-2", lease_ms=LEASE_MS, timeout_ms=0)
        assert [(c.id, c.attempt) for c in claims] == [("job-a", 1)], (
            "rule: a released job goes to the head of the queue, its attempt not counted"
        )

    async def test_release_by_another_worker_is_refused(self, storage: Storage) -> None:
        await claim(storage, "job-a", "worker-1")
        assert not await storage.release("job-a", "worker-2"), "rule: release by another worker returns False"
        assert not await storage.release("missing", "worker-1"), (
            "rule: release of a missing job returns False"
        )
        record = await storage.get("job-a")
        assert record is not None and record.state == JobState.PROCESSING, (
            "rule: a refused release changes nothing"
        )
        assert record.worker_id == "worker-1", "rule: a refused release changes nothing"

    @pytest.mark.parametrize("job_id", list(ODD_IDS.values()), ids=list(ODD_IDS))
    async def test_job_ids_round_trip(self, storage: Storage, job_id: str) -> None:
        async with storage.subscribe(Channel.EVENTS) as events:
            assert (await storage.enqueue(job_id, b"m")).accepted, "rule: any valid job id can be enqueued"
            event = await next_event(events, message="rule: enqueue publishes enqueued")
            assert event.job_id == job_id, "rule: events carry the job id unchanged"
            claims = await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0)
            assert [c.id for c in claims] == [job_id], "rule: a claim carries the job id unchanged"
            assert await storage.complete(job_id, "w", b"result", LONG_TTL_MS), "rule: complete of an odd id"
            record = await storage.get(job_id)
            assert record is not None and record.id == job_id, "rule: get returns the job id unchanged"
            assert record.result == b"result", "rule: the result of an odd id is stored"
            monitoring = monitoring_of(storage)
            if monitoring is not None:
                page = await monitoring.list_jobs(prefix=job_id)
                assert [r.id for r in page.records] == [job_id], "rule: list_jobs(prefix) finds an odd id"
            assert not (await storage.enqueue(job_id, b"m")).accepted, "rule: dedup holds for an odd id"
