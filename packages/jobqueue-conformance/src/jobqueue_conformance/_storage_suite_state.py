"""Storage suite, job-state group: finishing, TTLs, cancel, get, update_ttl."""

from __future__ import annotations

import pytest
from jobqueue import JobState
from jobqueue.storage import Finish, Storage, now_ms

from ._helpers import CLOCK_SKEW_MS, LEASE_MS, LONG_TTL_MS, claim, monitoring_of, wait_until

__all__ = ["StorageStateTests"]


class StorageStateTests:
    """``complete``, ``fail``, ``retry``, ``finish_many``, ``cancel``, TTLs, ``get``, ``update_ttl``."""

    async def test_complete_stores_the_result(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        before = now_ms()
        assert await storage.complete("job-1", "worker-1", b"result", 60_000), "rule: complete by the owner"
        record = await storage.get("job-1")
        assert record is not None and record.state == JobState.COMPLETED, "rule: complete sets completed"
        assert record.result == b"result", "rule: complete stores the result bytes"
        assert record.lease_until is None, "rule: a finished job has no lease"
        assert record.expires_at is not None and abs(record.expires_at - before - 60_000) < CLOCK_SKEW_MS, (
            "rule: complete sets expires_at = now + ttl_ms"
        )
        assert await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0) == [], (
            "rule: a finished job is gone"
        )

    async def test_fail_stores_the_error(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        assert await storage.fail("job-1", "worker-1", b"error", 60_000), "rule: fail by the owner"
        record = await storage.get("job-1")
        assert record is not None and record.state == JobState.FAILED, "rule: fail sets failed"
        assert record.error == b"error", "rule: fail stores the error bytes"
        assert record.expires_at is not None, "rule: fail sets expires_at"
        outcome = await storage.enqueue("job-1", b"again")
        assert not outcome.accepted, "rule: a failed job's id stays taken while its error lives"
        assert outcome.existing is not None and outcome.existing.state == JobState.FAILED, (
            "rule: a refused enqueue returns the failed record"
        )

    async def test_finishing_someone_elses_job_is_refused(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        assert not await storage.complete("job-1", "worker-2", b"r", LONG_TTL_MS), (
            "rule: complete by a worker that does not own the job returns False"
        )
        assert not await storage.fail("job-1", "worker-2", b"e", LONG_TTL_MS), (
            "rule: fail by a worker that does not own the job returns False"
        )
        assert not await storage.retry("job-1", "worker-2", b"e", 0), (
            "rule: retry by a worker that does not own the job returns False"
        )
        record = await storage.get("job-1")
        assert record is not None and record.state == JobState.PROCESSING, (
            "rule: a refused finish changes nothing"
        )
        assert record.worker_id == "worker-1" and record.result is None and record.error is None, (
            "rule: a refused finish changes nothing"
        )

    async def test_finishing_a_job_that_is_not_processing_is_refused(self, storage: Storage) -> None:
        await storage.enqueue("queued", b"m")
        assert not await storage.complete("queued", "worker-1", b"r", LONG_TTL_MS), (
            "rule: complete of a job that is not processing returns False"
        )
        assert not await storage.fail("missing", "worker-1", b"e", LONG_TTL_MS), (
            "rule: fail of a missing job returns False"
        )
        await storage.dequeue("worker-1", lease_ms=LEASE_MS, timeout_ms=0)
        assert await storage.complete("queued", "worker-1", b"r", LONG_TTL_MS), "rule: complete by the owner"
        assert not await storage.complete("queued", "worker-1", b"r2", LONG_TTL_MS), (
            "rule: a second complete of one job returns False"
        )
        record = await storage.get("queued")
        assert record is not None and record.result == b"r", "rule: a refused complete changes nothing"

    async def test_retry_sets_failing_and_reschedules(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        assert await storage.retry("job-1", "worker-1", b"error-1", 400), "rule: retry by the owner"
        record = await storage.get("job-1")
        assert record is not None and record.state == JobState.FAILING, "rule: retry sets failing"
        assert record.error == b"error-1", "rule: retry stores the error"
        assert record.run_at is not None and record.lease_until is None, "rule: retry schedules the job"
        assert await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0) == [], (
            "rule: a retried job is not claimed before its delay"
        )
        claims = await storage.dequeue("worker-2", lease_ms=LEASE_MS, timeout_ms=5_000)
        assert [(c.id, c.attempt) for c in claims] == [("job-1", 2)], (
            "rule: a retried job is claimed again when due, attempts counting claims"
        )

    async def test_retry_without_delay_is_ready_at_once(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        assert await storage.retry("job-1", "worker-1", b"e", 0), "rule: retry by the owner"
        claims = await storage.dequeue("worker-1", lease_ms=LEASE_MS, timeout_ms=2_000)
        assert [(c.id, c.attempt) for c in claims] == [("job-1", 2)], (
            "rule: retry(delay_ms=0) requeues at once"
        )
        record = await storage.get("job-1")
        assert record is not None and record.attempts == 2, "rule: attempts counts claims"

    @pytest.mark.parametrize("outcome", ["completed", "failed"])
    async def test_terminal_record_expires_after_its_ttl(self, storage: Storage, outcome: str) -> None:
        await claim(storage, "job-1", "worker-1")
        if outcome == "completed":
            assert await storage.complete("job-1", "worker-1", b"r", 150), "rule: complete by the owner"
        else:
            assert await storage.fail("job-1", "worker-1", b"e", 150), "rule: fail by the owner"
        assert await storage.get("job-1") is not None, "rule: a finished record lives until its TTL"

        async def gone() -> bool:
            return await storage.get("job-1") is None

        await wait_until(gone, message=f"rule: a {outcome} record expires after its ttl_ms")
        monitoring = monitoring_of(storage)
        if monitoring is not None:
            counts = await monitoring.counts()
            assert counts[JobState(outcome)] == 0, "rule: an expired record is not counted"
            assert (await monitoring.list_jobs()).records == [], "rule: an expired record is not listed"
        assert (await storage.enqueue("job-1", b"again")).accepted, "rule: expiry frees the job id"

    async def test_cancel_of_a_queued_job_deletes_it(self, storage: Storage) -> None:
        await storage.enqueue("job-1", b"m")
        assert await storage.cancel("job-1") == JobState.QUEUED, "rule: cancel returns the state it found"
        assert await storage.get("job-1") is None, "rule: cancel deletes a queued job"
        assert (await storage.enqueue("job-1", b"m")).accepted, "rule: cancel frees the job id"

    async def test_cancel_of_a_scheduled_job_removes_it_from_the_schedule(self, storage: Storage) -> None:
        await storage.enqueue("job-1", b"m", delay_ms=200)
        assert await storage.cancel("job-1") == JobState.QUEUED, "rule: cancel returns the state it found"
        assert await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=500) == [], (
            "rule: a cancelled scheduled job is never claimed"
        )

    async def test_cancel_of_a_failing_job_drops_its_retry(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        await storage.retry("job-1", "worker-1", b"e", 300)
        assert await storage.cancel("job-1") == JobState.FAILING, "rule: cancel returns the state it found"
        assert await storage.get("job-1") is None, "rule: cancel deletes a failing job"
        assert await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=600) == [], (
            "rule: a cancelled failing job is never retried"
        )

    async def test_cancel_of_a_failed_job_frees_its_id(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        await storage.fail("job-1", "worker-1", b"e", LONG_TTL_MS)
        assert await storage.cancel("job-1") == JobState.FAILED, "rule: cancel returns the state it found"
        assert await storage.get("job-1") is None, "rule: cancel deletes a failed record"
        assert (await storage.enqueue("job-1", b"m")).accepted, "rule: cancel of a failed job frees its id"

    async def test_cancel_leaves_processing_and_completed_jobs(self, storage: Storage) -> None:
        await claim(storage, "running", "worker-1")
        assert await storage.cancel("running") == JobState.PROCESSING, (
            "rule: cancel returns the state it found"
        )
        record = await storage.get("running")
        assert record is not None and record.state == JobState.PROCESSING, "rule: cancel leaves a started job"
        await storage.complete("running", "worker-1", b"r", LONG_TTL_MS)
        assert await storage.cancel("running") == JobState.COMPLETED, (
            "rule: cancel returns the state it found"
        )
        record = await storage.get("running")
        assert record is not None and record.result == b"r", "rule: cancel leaves a completed job"
        assert await storage.cancel("missing") is None, "rule: cancel of a missing job returns None"

    async def test_get_many_keeps_the_order_given(self, storage: Storage) -> None:
        await storage.enqueue("job-a", b"a")
        await storage.enqueue("job-b", b"b")
        records = await storage.get_many(["job-b", "missing", "job-a"])
        assert [r.id if r else None for r in records] == ["job-b", None, "job-a"], (
            "rule: get_many returns one entry per id, in the order given, None for missing"
        )
        assert await storage.get_many([]) == [], "rule: get_many of no ids is []"

    async def test_update_ttl(self, storage: Storage) -> None:
        assert await storage.update_ttl("missing", 1_000) == "not_found", "rule: update_ttl of a missing job"
        await claim(storage, "done", "worker-1")
        await storage.enqueue("queued", b"m")
        assert await storage.update_ttl("queued", 1_000) == "not_terminal", "rule: update_ttl of a queued job"
        assert await storage.update_ttl("done", 1_000) == "not_terminal", "rule: update_ttl of a running job"
        await storage.complete("done", "worker-1", b"r", 200)
        before = now_ms()
        assert await storage.update_ttl("done", 60_000) == "updated", "rule: update_ttl of a completed job"
        record = await storage.get("done")
        assert record is not None and record.expires_at is not None, "rule: a completed record expires"
        assert abs(record.expires_at - before - 60_000) < CLOCK_SKEW_MS, "rule: update_ttl sets now + ttl_ms"
        assert await storage.update_ttl("done", 100) == "updated", "rule: update_ttl can shorten a TTL"

        async def gone() -> bool:
            return await storage.get("done") is None

        await wait_until(gone, message="rule: a record expires at the TTL set by update_ttl")

    async def test_finish_many_ends_several_attempts_in_one_call(self, storage: Storage) -> None:
        for job_id in ("done", "failed", "retried", "released"):
            await storage.enqueue(job_id, b"m")
        claims = await storage.dequeue("worker-1", lease_ms=LEASE_MS, timeout_ms=0, limit=4)
        assert len(claims) == 4, "rule: dequeue(limit=n) claims up to n ready jobs"
        outcomes = [
            Finish.complete("done", b"r", LONG_TTL_MS),
            Finish.fail("failed", b"e", LONG_TTL_MS),
            Finish.retry("retried", b"e", 600_000),
            Finish.release("released"),
            Finish.complete("missing", b"r", LONG_TTL_MS),
        ]
        assert await storage.finish_many("worker-1", outcomes) == [True, True, True, True, False], (
            "rule: finish_many returns one bool per outcome, in order (False: the worker does not own the job)"
        )
        records = await storage.get_many(["done", "failed", "retried", "released"])
        assert [r.state if r else None for r in records] == [
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.FAILING,
            JobState.QUEUED,
        ], "rule: finish_many applies complete, fail, retry and release to each job"
        assert await storage.finish_many("worker-1", [Finish.complete("done", b"again", 1_000)]) == [False], (
            "rule: an attempt ends once (a second finish returns False)"
        )
