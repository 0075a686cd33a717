"""Storage suite, leases group: heartbeats, lease renewal, abort flags, progress, stalled-job recovery."""

from __future__ import annotations

import pytest
from jobqueue import JobState
from jobqueue.storage import Revoked, Stalled, Storage, now_ms

from ._helpers import CLOCK_SKEW_MS, LEASE_MS, LONG_TTL_MS, claim, wait_until

__all__ = ["StorageLeaseTests"]

ABORT_ENDINGS = ["retry", "release", "recovery", "fail-then-cancel"]


class StorageLeaseTests:
    """``heartbeat``/``renew_leases``, ``request_abort``, ``set_progress``, ``recover_stalled``."""

    async def test_request_abort_flags_a_processing_job(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        assert await storage.request_abort("job-1") == JobState.PROCESSING, (
            "rule: request_abort returns the state it found"
        )
        record = await storage.get("job-1")
        assert record is not None and record.state == JobState.PROCESSING, "rule: an abort request only flags"
        assert record.abort_requested, "rule: request_abort sets abort_requested on a processing job"
        assert await storage.renew_leases("worker-1", ["job-1"], LEASE_MS) == {"job-1": Revoked.ABORTED}, (
            "rule: renew_leases reports ABORTED for a job whose abort was requested"
        )

    @pytest.mark.parametrize("ending", ABORT_ENDINGS)
    async def test_the_abort_flag_is_cleared_when_the_attempt_ends(
        self, storage: Storage, ending: str
    ) -> None:
        lease_ms = 100 if ending == "recovery" else LEASE_MS
        await claim(storage, "job-1", "worker-1", lease_ms=lease_ms)
        await storage.request_abort("job-1")
        if ending == "retry":
            assert await storage.retry("job-1", "worker-1", b"aborted", 0), "rule: retry by the owner"
        elif ending == "release":
            assert await storage.release("job-1", "worker-1"), "rule: release by the owner"
        elif ending == "recovery":

            async def recovered() -> bool:
                return bool((await storage.recover_stalled()).stalled)

            await wait_until(recovered, message="rule: recover_stalled recovers a job whose lease ran out")
        else:  # the job ends for good, its failed record is cleared and the id enqueued anew
            assert await storage.fail("job-1", "worker-1", b"aborted", LONG_TTL_MS), "rule: fail by the owner"
            assert await storage.cancel("job-1") == JobState.FAILED, "rule: cancel clears a failed job"
            assert (await storage.enqueue("job-1", b"new")).accepted, (
                "rule: a cleared id can be enqueued again"
            )
        record = await storage.get("job-1")
        assert record is not None and not record.abort_requested, (
            f"rule: the abort flag is cleared whenever an attempt ends ({ending})"
        )
        claims = await storage.dequeue("worker-2", lease_ms=LEASE_MS, timeout_ms=2_000)
        assert [c.id for c in claims] == ["job-1"], (
            f"rule: a job whose attempt ended ({ending}) can run again"
        )
        assert await storage.renew_leases("worker-2", ["job-1"], LEASE_MS) == {}, (
            f"rule: the abort flag is cleared whenever an attempt ends ({ending}): "
            "the next attempt is not reported ABORTED"
        )

    async def test_renew_leases_extends_own_leases_and_reports_lost_ones(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1", lease_ms=1_000)
        before = now_ms()
        assert await storage.renew_leases("worker-1", ["job-1"], 60_000) == {}, (
            "rule: renew_leases reports nothing for the worker's own running jobs"
        )
        record = await storage.get("job-1")
        assert record is not None and record.lease_until is not None, "rule: a processing job has a lease"
        assert abs(record.lease_until - before - 60_000) < CLOCK_SKEW_MS, "rule: renew sets now + lease_ms"
        assert await storage.renew_leases("worker-2", ["job-1"], 60_000) == {"job-1": Revoked.LOST}, (
            "rule: renew_leases reports LOST for a job another worker holds"
        )
        assert await storage.renew_leases("worker-1", ["missing", "job-1"], 60_000) == {
            "missing": Revoked.LOST
        }, "rule: renew_leases reports LOST for a missing job"
        await storage.complete("job-1", "worker-1", b"r", LONG_TTL_MS)
        assert await storage.renew_leases("worker-1", ["job-1"], 60_000) == {"job-1": Revoked.LOST}, (
            "rule: renew_leases reports LOST for a job that is no longer processing"
        )

    async def test_a_lease_only_moves_forward(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1", lease_ms=1_000)
        before = now_ms()
        assert await storage.renew_leases("worker-1", ["job-1"], 120_000) == {}, "rule: renew by the owner"
        assert await storage.renew_leases("worker-1", ["job-1"], 1_000) == {}, (
            "rule: a shorter renewal is not an error (the job goes on)"
        )
        record = await storage.get("job-1")
        assert record is not None and record.lease_until is not None, "rule: a processing job has a lease"
        assert record.lease_until - before > 120_000 - CLOCK_SKEW_MS, (
            "rule: a lease only moves forward: renewing with a shorter lease keeps the longer deadline"
        )

    async def test_heartbeat_registers_and_renews_in_one_call(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1", lease_ms=1_000)
        before = now_ms()
        revoked = await storage.heartbeat(
            "worker-1", ttl_ms=60_000, job_ids=["job-1", "gone"], lease_ms=60_000
        )
        assert revoked == {"gone": Revoked.LOST}, "rule: heartbeat reports only the jobs the worker must stop"
        record = await storage.get("job-1")
        assert record is not None and record.lease_until is not None, "rule: a processing job has a lease"
        assert abs(record.lease_until - before - 60_000) < CLOCK_SKEW_MS, "rule: heartbeat renews the leases"

    async def test_set_progress_stores_the_value_on_the_record(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        assert await storage.set_progress("job-1", "worker-1", b"50%"), "rule: set_progress by the owner"
        record = await storage.get("job-1")
        assert record is not None and record.progress == b"50%", (
            "rule: set_progress stores JobRecord.progress"
        )
        assert await storage.set_progress("job-1", "worker-1", b"75%"), "rule: set_progress by the owner"
        record = await storage.get("job-1")
        assert record is not None and record.progress == b"75%", "rule: set_progress replaces the value"

    async def test_set_progress_of_a_job_not_owned_is_refused(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        await storage.enqueue("queued", b"m")
        assert not await storage.set_progress("job-1", "worker-2", b"x"), (
            "rule: set_progress returns False for a job another worker holds"
        )
        assert not await storage.set_progress("queued", "worker-1", b"x"), (
            "rule: set_progress returns False for a job that is not processing"
        )
        assert not await storage.set_progress("missing", "worker-1", b"x"), (
            "rule: set_progress returns False for a missing job"
        )
        records = await storage.get_many(["job-1", "queued"])
        assert [r.progress if r else b"?" for r in records] == [None, None], (
            "rule: a refused set_progress changes nothing"
        )

    async def test_recover_stalled_requeues_expired_leases_at_the_head(self, storage: Storage) -> None:
        assert (await storage.recover_stalled()).next_expiry_ms is None, (
            "rule: Recovery.next_expiry_ms is None when no job is processing"
        )
        await claim(storage, "job-a", "worker-1", lease_ms=300)
        await storage.enqueue("job-b", b"b")
        first = await storage.recover_stalled()
        if first.stalled == []:  # a loaded machine may have let the lease run out already
            assert first.next_expiry_ms is not None and 0 <= first.next_expiry_ms <= 300, (
                "rule: Recovery.next_expiry_ms is the ms until the earliest lease runs out"
            )
        found: list[Stalled] = list(first.stalled)

        async def recovered() -> bool:
            found.extend((await storage.recover_stalled()).stalled)
            return bool(found)

        await wait_until(recovered, message="rule: recover_stalled recovers a job whose lease ran out")
        assert found == [Stalled("job-a", "worker-1")], "rule: recover_stalled returns each expired job once"
        record = await storage.get("job-a")
        assert record is not None and record.state == JobState.QUEUED, "rule: a stalled job is queued again"
        assert record.worker_id is None and record.lease_until is None, "rule: a stalled job loses its worker"
        assert (await storage.recover_stalled()).next_expiry_ms is None, (
            "rule: a recovered job holds no lease"
        )
        assert not await storage.complete("job-a", "worker-1", b"late", LONG_TTL_MS), (
            "rule: a late complete of a recovered job returns False"
        )
        claims = await storage.dequeue("worker-2", lease_ms=LEASE_MS, timeout_ms=0)
        assert [(c.id, c.attempt) for c in claims] == [("job-a", 2)], (
            "rule: a stalled job goes back to the head of the queue"
        )
        assert (await storage.recover_stalled()).stalled == [], (
            "rule: recover_stalled never recovers a job twice"
        )

    async def test_recover_stalled_reports_the_next_lease_expiry(self, storage: Storage) -> None:
        await claim(storage, "long", "worker-1", lease_ms=60_000)
        await claim(storage, "short", "worker-1", lease_ms=20_000)
        recovery = await storage.recover_stalled()
        assert recovery.stalled == [], "rule: recover_stalled leaves live leases alone"
        assert (
            recovery.next_expiry_ms is not None and 20_000 - CLOCK_SKEW_MS < recovery.next_expiry_ms <= 20_000
        ), "rule: Recovery.next_expiry_ms is the ms until the earliest lease runs out"

    async def test_recover_stalled_takes_the_oldest_lease_first(self, storage: Storage) -> None:
        await claim(storage, "later", "worker-1", lease_ms=250)
        await claim(storage, "sooner", "worker-2", lease_ms=100)
        record = await storage.get("later")
        assert record is not None and record.lease_until is not None, "rule: a claimed job has a lease"
        both_expired = record.lease_until + 50

        async def past_both() -> bool:  # only the clock: one recover_stalled call must see both
            return now_ms() > both_expired

        await wait_until(past_both, message="the clock moves past both leases")
        recovery = await storage.recover_stalled()
        assert recovery.stalled == [Stalled("sooner", "worker-2"), Stalled("later", "worker-1")], (
            "rule: recover_stalled recovers every expired job in one call, oldest lease first"
        )
