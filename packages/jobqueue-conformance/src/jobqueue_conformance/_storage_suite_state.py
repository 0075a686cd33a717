"""Storage suite, job-state group: finishing, TTLs, cancel, abort, leases, get/delete."""

from __future__ import annotations

import pytest
from jobqueue import JobState, Stalled, Storage, now_ms

from ._helpers import CLOCK_SKEW_MS, LEASE_MS, LONG_TTL_MS, claim, wait_until

__all__ = ["StorageStateTests"]


class StorageStateTests:
    """``complete``, ``fail``, ``retry``, ``cancel``, ``request_abort``, leases, TTLs, ``get``, ``delete``."""

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
        counts = await storage.counts()
        assert counts[JobState(outcome)] == 0, "rule: an expired record is not counted"
        assert (await storage.list_jobs()).records == [], "rule: an expired record is not listed"
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

    async def test_request_abort_flags_a_processing_job(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        assert await storage.request_abort("job-1") == JobState.PROCESSING, (
            "rule: request_abort returns the state it found"
        )
        record = await storage.get("job-1")
        assert record is not None and record.state == JobState.PROCESSING, "rule: an abort request only flags"
        assert await storage.renew_leases("worker-1", ["job-1"], LEASE_MS) == ["job-1"], (
            "rule: renew_leases reports a job whose abort was requested"
        )

    async def test_an_abort_request_ends_with_its_job(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        await storage.request_abort("job-1")
        await storage.fail("job-1", "worker-1", b"aborted", LONG_TTL_MS)
        await storage.delete("job-1")
        await claim(storage, "job-1", "worker-1")
        assert await storage.renew_leases("worker-1", ["job-1"], LEASE_MS) == [], (
            "rule: an abort request does not outlive its job (a new job with the id runs)"
        )

    async def test_request_abort_cancels_a_job_that_has_not_started(self, storage: Storage) -> None:
        await storage.enqueue("job-1", b"m")
        assert await storage.request_abort("job-1") == JobState.QUEUED, (
            "rule: request_abort returns the state it found"
        )
        assert await storage.get("job-1") is None, "rule: request_abort cancels a queued job"
        assert await storage.request_abort("missing") is None, "rule: request_abort of a missing job is None"

    async def test_renew_leases_extends_own_leases_and_reports_lost_ones(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1", lease_ms=1_000)
        before = now_ms()
        assert await storage.renew_leases("worker-1", ["job-1"], 60_000) == [], (
            "rule: renew_leases reports nothing for the worker's own running jobs"
        )
        record = await storage.get("job-1")
        assert record is not None and record.lease_until is not None, "rule: a processing job has a lease"
        assert abs(record.lease_until - before - 60_000) < CLOCK_SKEW_MS, "rule: renew sets now + lease_ms"
        assert await storage.renew_leases("worker-2", ["job-1"], 60_000) == ["job-1"], (
            "rule: renew_leases reports a job another worker holds"
        )
        assert await storage.renew_leases("worker-1", ["missing", "job-1"], 60_000) == ["missing"], (
            "rule: renew_leases reports a missing job"
        )
        await storage.complete("job-1", "worker-1", b"r", LONG_TTL_MS)
        assert await storage.renew_leases("worker-1", ["job-1"], 60_000) == ["job-1"], (
            "rule: renew_leases reports a job that is no longer processing"
        )

    async def test_recover_stalled_requeues_expired_leases_at_the_head(self, storage: Storage) -> None:
        assert await storage.next_lease_expiry() is None, "rule: next_lease_expiry is None with no lease"
        await claim(storage, "job-a", "worker-1", lease_ms=150)
        await storage.enqueue("job-b", b"b")
        expiry = await storage.next_lease_expiry()
        assert expiry is not None and expiry <= 150, (
            "rule: next_lease_expiry is the ms until a lease runs out"
        )
        assert await storage.recover_stalled() == [], "rule: recover_stalled leaves live leases alone"

        async def expired() -> bool:
            left = await storage.next_lease_expiry()
            return left is not None and left <= 0

        await wait_until(expired, message="rule: next_lease_expiry reaches <= 0 when the lease runs out")
        stalled = await storage.recover_stalled()
        assert stalled == [Stalled("job-a", "worker-1")], "rule: recover_stalled returns each expired job"
        record = await storage.get("job-a")
        assert record is not None and record.state == JobState.QUEUED, "rule: a stalled job is queued again"
        assert record.worker_id is None and record.lease_until is None, "rule: a stalled job loses its worker"
        assert await storage.next_lease_expiry() is None, "rule: a recovered job holds no lease"
        assert not await storage.complete("job-a", "worker-1", b"late", LONG_TTL_MS), (
            "rule: a late complete of a recovered job returns False"
        )
        claims = await storage.dequeue("worker-2", lease_ms=LEASE_MS, timeout_ms=0)
        assert [(c.id, c.attempt) for c in claims] == [("job-a", 2)], (
            "rule: a stalled job goes back to the head of the queue"
        )
        assert await storage.recover_stalled() == [], "rule: recover_stalled never recovers a job twice"

    async def test_get_many_keeps_the_order_given(self, storage: Storage) -> None:
        await storage.enqueue("job-a", b"a")
        await storage.enqueue("job-b", b"b")
        records = await storage.get_many(["job-b", "missing", "job-a"])
        assert [r.id if r else None for r in records] == ["job-b", None, "job-a"], (
            "rule: get_many returns one entry per id, in the order given, None for missing"
        )
        assert await storage.get_many([]) == [], "rule: get_many of no ids is []"

    async def test_delete_removes_a_job_that_is_not_processing(self, storage: Storage) -> None:
        await claim(storage, "running", "worker-1")
        await storage.enqueue("queued", b"m")
        assert await storage.delete("queued"), "rule: delete of a queued job returns True"
        assert await storage.get("queued") is None, "rule: delete removes the record"
        assert await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0) == [], (
            "rule: delete dequeues the job"
        )
        assert not await storage.delete("running"), "rule: delete of a processing job returns False"
        assert await storage.get("running") is not None, "rule: delete leaves a processing job"
        await storage.complete("running", "worker-1", b"r", LONG_TTL_MS)
        assert await storage.delete("running"), "rule: delete of a completed job returns True"
        assert not await storage.delete("running"), "rule: delete of a missing job returns False"
        assert (await storage.enqueue("running", b"m")).accepted, "rule: delete frees the job id"

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
