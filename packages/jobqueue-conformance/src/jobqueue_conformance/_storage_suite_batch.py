"""Storage suite, batch and priority group: ``enqueue_many`` and the claim order by priority."""

from __future__ import annotations

import pytest
from jobqueue import JobState
from jobqueue.storage import NewJob, Storage, rules

from ._helpers import LEASE_MS, refused_with_value_error

__all__ = ["StorageBatchTests"]


async def _claim_all(storage: Storage, limit: int = 1) -> list[str]:
    claimed: list[str] = []
    while claims := await storage.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0, limit=limit):
        claimed += [c.id for c in claims]
    return claimed


class StorageBatchTests:
    """``enqueue_many`` (outcomes in order, dedup per id) and ``priority``."""

    async def test_higher_priority_is_claimed_first_fifo_within_a_priority(self, storage: Storage) -> None:
        jobs = [("low-1", 0), ("high-1", 5), ("mid", 1), ("high-2", 5), ("low-2", 0), ("negative", -3)]
        for job_id, priority in jobs:
            await storage.enqueue(job_id, b"m", priority=priority)
        assert await _claim_all(storage) == ["high-1", "high-2", "mid", "low-1", "low-2", "negative"], (
            "rule: priorities: higher priority is claimed first, FIFO within a priority"
        )

    async def test_a_batch_claim_follows_priority_order(self, storage: Storage) -> None:
        await storage.enqueue_many([NewJob(f"p{i % 3}-{i}", b"m", priority=i % 3) for i in range(9)])
        assert await _claim_all(storage, limit=4) == [
            "p2-2", "p2-5", "p2-8", "p1-1", "p1-4", "p1-7", "p0-0", "p0-3", "p0-6",
        ], "rule: priorities: dequeue(limit=n) claims by priority, then FIFO"  # fmt: skip

    async def test_record_keeps_its_priority(self, storage: Storage) -> None:
        await storage.enqueue("job-1", b"m", priority=rules.PRIORITY_MAX)
        await storage.enqueue("job-2", b"m", priority=rules.PRIORITY_MIN)
        records = await storage.get_many(["job-1", "job-2"])
        assert [r.priority if r else None for r in records] == [rules.PRIORITY_MAX, rules.PRIORITY_MIN], (
            "rule: priorities: a record keeps the priority it was enqueued with (bounds included)"
        )

    @pytest.mark.parametrize("priority", [rules.PRIORITY_MAX + 1, rules.PRIORITY_MIN - 1])
    async def test_out_of_range_priority_is_refused_before_anything_is_written(
        self, storage: Storage, priority: int
    ) -> None:
        rule = "rule: priorities: an out-of-range priority raises ValueError naming priority"
        await refused_with_value_error(
            storage.enqueue("job-1", b"m", priority=priority), rule=rule, naming="priority"
        )
        batch = [NewJob("job-2", b"m"), NewJob("job-3", b"m", priority=priority)]
        await refused_with_value_error(storage.enqueue_many(batch), rule=rule, naming="priority")
        assert await storage.get_many(["job-1", "job-2", "job-3"]) == [None, None, None], (
            "rule: priorities: an out-of-range priority is refused before anything is written"
        )

    async def test_enqueue_many_returns_outcomes_in_order(self, storage: Storage) -> None:
        await storage.enqueue("old", b"old")
        outcomes = await storage.enqueue_many([NewJob("a", b"a"), NewJob("old", b"new"), NewJob("b", b"b")])
        assert [o.accepted for o in outcomes] == [True, False, True], (
            "rule: enqueue_many returns one outcome per job, in order"
        )
        existing = outcomes[1].existing
        assert existing is not None and existing.message == b"old", (
            "rule: enqueue_many dedups per id: a live id returns its record unchanged"
        )
        assert await _claim_all(storage) == ["old", "a", "b"], (
            "rule: enqueue_many queues accepted jobs in order"
        )

    async def test_enqueue_many_dedups_inside_one_batch(self, storage: Storage) -> None:
        outcomes = await storage.enqueue_many(
            [NewJob("x", b"first"), NewJob("y", b"y"), NewJob("x", b"second")]
        )
        assert [o.accepted for o in outcomes] == [True, True, False], (
            "rule: enqueue_many dedups per id, including duplicates inside one batch"
        )
        existing = outcomes[2].existing
        assert existing is not None and existing.message == b"first" and existing.state == JobState.QUEUED, (
            "rule: a duplicate inside a batch returns the record of the earlier job"
        )
        assert await _claim_all(storage, limit=10) == ["x", "y"], (
            "rule: enqueue_many dedups per id, including duplicates inside one batch (queued once)"
        )

    async def test_enqueue_many_schedules_delayed_jobs(self, storage: Storage) -> None:
        await storage.enqueue_many([NewJob("later", b"m", delay_ms=60_000), NewJob("now", b"m")])
        assert await _claim_all(storage) == ["now"], "rule: enqueue_many honours delay_ms per job"
        record = await storage.get("later")
        assert record is not None and record.run_at is not None, "rule: a delayed job is scheduled"

    async def test_empty_and_oversized_batches_are_refused(self, storage: Storage) -> None:
        rule = "rule: enqueue_many refuses an empty batch and one over rules.MAX_BATCH with ValueError"
        await refused_with_value_error(storage.enqueue_many([]), rule=rule, naming="empty")
        too_many = [NewJob(f"job-{i}", b"m") for i in range(rules.MAX_BATCH + 1)]
        await refused_with_value_error(storage.enqueue_many(too_many), rule=rule, naming=str(rules.MAX_BATCH))
        assert await storage.get("job-0") is None, (
            "rule: enqueue_many refuses an empty batch or one over rules.MAX_BATCH before anything is written"
        )
        outcomes = await storage.enqueue_many(too_many[: rules.MAX_BATCH])
        assert len(outcomes) == rules.MAX_BATCH and all(o.accepted for o in outcomes), (
            "rule: enqueue_many takes a batch of rules.MAX_BATCH jobs"
        )
