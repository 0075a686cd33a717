"""The queue primitives on PostgreSQL, one rule at a time (enqueue, claim, finish, heartbeat, cancel, recovery)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from jobqueue import JobState
from jobqueue.storage import Channel, EventKind, Finish, NewJob, Revoked, StorageEvent
from jobqueue_postgres import PostgresStorage

pytestmark = pytest.mark.postgres


async def _next(events: object, timeout: float = 10) -> StorageEvent:
    return await asyncio.wait_for(anext(events), timeout)  # type: ignore[call-overload]


async def _ids(storage: PostgresStorage, limit: int = 100, worker: str = "w") -> list[str]:
    return [claim.id for claim in await storage.dequeue(worker, lease_ms=60_000, timeout_ms=0, limit=limit)]


async def test_enqueue_dedups_per_id_including_inside_one_batch(storage: PostgresStorage) -> None:
    outcomes = await storage.enqueue_many([NewJob("a", b"1"), NewJob("b", b"2"), NewJob("a", b"3")])
    assert [o.accepted for o in outcomes] == [True, True, False]
    assert outcomes[2].existing is not None and outcomes[2].existing.message == b"1"
    again = await storage.enqueue("a", b"4")
    assert not again.accepted and again.existing is not None
    assert (again.existing.state, again.existing.message) == (JobState.QUEUED, b"1")


async def test_of_many_concurrent_enqueues_of_one_id_exactly_one_is_accepted(
    postgres_url: str, schema: str, storage: PostgresStorage
) -> None:
    others = [PostgresStorage(postgres_url, schema=schema, pool_min=0, pool_max=2) for _ in range(4)]
    for other in others:
        await other.connect()
    try:
        outcomes = await asyncio.gather(
            *(s.enqueue("one", b"m") for s in [storage, *others] for _ in range(5))
        )
    finally:
        for other in others:
            await other.disconnect()
    assert sum(o.accepted for o in outcomes) == 1
    assert all(o.existing is not None for o in outcomes if not o.accepted)


async def test_claims_take_higher_priority_first_then_fifo(storage: PostgresStorage) -> None:
    await storage.enqueue_many(
        [NewJob("low", b"", priority=-5), NewJob("a", b""), NewJob("high", b"", priority=7), NewJob("b", b"")]
    )
    assert await _ids(storage, 2) == ["high", "a"]
    assert await _ids(storage) == ["b", "low"]
    assert await _ids(storage) == []


async def test_a_released_job_goes_back_to_the_head_its_attempt_not_counted(storage: PostgresStorage) -> None:
    await storage.enqueue_many([NewJob(i, b"") for i in "abc"])
    assert await _ids(storage, 1) == ["a"]
    assert await storage.release("a", "w")
    claims = await storage.dequeue("w", lease_ms=1000, timeout_ms=0, limit=3)
    assert [(c.id, c.attempt) for c in claims] == [("a", 1), ("b", 1), ("c", 1)]


async def test_a_blocked_claim_wakes_on_enqueue_without_polling(storage: PostgresStorage) -> None:
    claim = asyncio.create_task(storage.dequeue("w", lease_ms=1000, timeout_ms=30_000))
    await asyncio.sleep(0.2)  # let the claim block (it would take the job at once anyway)
    started = time.monotonic()
    await storage.enqueue("late", b"m")
    claims = await asyncio.wait_for(claim, 10)
    assert [c.id for c in claims] == ["late"]
    assert time.monotonic() - started < 1.5  # far below the 2 s safety re-check


async def test_a_delayed_job_is_claimed_when_due_and_not_before(storage: PostgresStorage) -> None:
    await storage.enqueue("later", b"m", delay_ms=600)
    record = await storage.get("later")
    assert record is not None and record.run_at is not None and record.state is JobState.QUEUED
    assert await _ids(storage) == []
    started = time.monotonic()
    claims = await storage.dequeue("w", lease_ms=1000, timeout_ms=20_000)
    assert [c.id for c in claims] == ["later"]
    assert 0.3 < time.monotonic() - started < 5


async def test_blocked_claims_share_a_burst_without_losing_jobs(storage: PostgresStorage) -> None:
    claims = [
        asyncio.create_task(storage.dequeue(f"w{i}", lease_ms=5000, timeout_ms=20_000, limit=30))
        for i in range(5)
    ]
    await asyncio.sleep(0.2)
    await storage.enqueue_many([NewJob(f"j{i}", b"") for i in range(100)])
    got = [c.id for task in claims for c in await task]
    while len(got) < 100:
        more = await _ids(storage)
        assert more, f"jobs lost: {100 - len(got)}"
        got += more
    assert sorted(got) == sorted(f"j{i}" for i in range(100))


async def test_finish_needs_ownership_and_a_repeated_id_is_finished_once(storage: PostgresStorage) -> None:
    await storage.enqueue_many([NewJob("a", b""), NewJob("b", b"")])
    await _ids(storage)
    assert not await storage.complete("a", "intruder", b"r", 1000)
    results = await storage.finish_many(
        "w", [Finish.complete("a", b"r", 60_000), Finish.fail("a", b"e", 60_000)]
    )
    assert results == [True, False]
    record = await storage.get("a")
    assert record is not None and (record.state, record.result, record.worker_id) == (
        JobState.COMPLETED,
        b"r",
        None,
    )


async def test_a_retry_is_failing_until_due_then_claimed_again(storage: PostgresStorage) -> None:
    await storage.enqueue("r", b"m")
    await _ids(storage)
    assert await storage.retry("r", "w", b"boom", 400)
    record = await storage.get("r")
    assert record is not None and (record.state, record.error) == (JobState.FAILING, b"boom")
    claims = await storage.dequeue("w", lease_ms=1000, timeout_ms=20_000)
    assert [(c.id, c.attempt) for c in claims] == [("r", 2)]


async def test_heartbeat_renews_forward_only_and_reports_lost_and_aborted(storage: PostgresStorage) -> None:
    await storage.enqueue_many([NewJob("a", b""), NewJob("b", b"")])
    await storage.dequeue("w", lease_ms=60_000, timeout_ms=0, limit=2)
    before = await storage.get("a")
    assert before is not None and before.lease_until is not None
    assert await storage.renew_leases("w", ["a"], 1000) == {}
    after = await storage.get("a")
    assert after is not None and after.lease_until == before.lease_until  # never moved back
    assert await storage.request_abort("b") is JobState.PROCESSING
    revoked = await storage.heartbeat("w", ttl_ms=5000, job_ids=["a", "b", "gone"], lease_ms=120_000)
    assert revoked == {"b": Revoked.ABORTED, "gone": Revoked.LOST}
    renewed = await storage.get("a")
    assert (
        renewed is not None and renewed.lease_until is not None and renewed.lease_until > before.lease_until
    )
    assert await storage.heartbeat("other", ttl_ms=None, job_ids=["a"], lease_ms=1000) == {"a": Revoked.LOST}


async def test_cancel_follows_the_table(storage: PostgresStorage) -> None:
    await storage.enqueue_many([NewJob("q", b""), NewJob("p", b""), NewJob("f", b""), NewJob("c", b"")])
    await storage.dequeue("w", lease_ms=60_000, timeout_ms=0, limit=1)  # q
    await storage.enqueue("later", b"", delay_ms=60_000)
    claims = await _ids(storage, 3)
    assert claims == ["p", "f", "c"]
    await storage.fail("f", "w", b"e", 60_000)
    await storage.complete("c", "w", b"r", 60_000)
    async with storage.subscribe(Channel.EVENTS, Channel.CONTROL) as events:
        assert await storage.cancel("later") is JobState.QUEUED
        assert (await _next(events)).kind is EventKind.CANCELLED
        assert await storage.cancel("p") is JobState.PROCESSING
        assert await storage.cancel("c") is JobState.COMPLETED
        assert await storage.cancel("f") is JobState.FAILED  # cleared silently, freeing the id
        assert await storage.cancel("nothing") is None
        assert await storage.request_abort("p") is JobState.PROCESSING
        abort = await _next(events)
    assert (abort.kind, abort.job_id, abort.worker_id) == (EventKind.ABORT, "p", "w")
    assert [r is None for r in await storage.get_many(["later", "p", "f", "c"])] == [True, False, True, False]
    assert (await storage.enqueue("f", b"again")).accepted


async def test_stalled_jobs_are_recovered_oldest_lease_first_and_a_late_finish_is_refused(
    storage: PostgresStorage, admin: asyncpg.Connection
) -> None:
    await storage.enqueue_many([NewJob(i, b"") for i in ("a", "b", "c")])
    await storage.dequeue("w1", lease_ms=100, timeout_ms=0, limit=1)
    await storage.dequeue("w2", lease_ms=200, timeout_ms=0, limit=1)
    await storage.dequeue("w3", lease_ms=600_000, timeout_ms=0, limit=1)
    await asyncio.sleep(0.25)  # the leases of a and b run out (server clock)
    async with storage.subscribe(Channel.EVENTS) as events:
        recovery = await storage.recover_stalled()
        kinds = [(e.kind, e.job_id, e.worker_id) for e in [await _next(events) for _ in range(4)]]
    assert [(s.id, s.worker_id) for s in recovery.stalled] == [("a", "w1"), ("b", "w2")]
    assert recovery.next_expiry_ms is not None and 500_000 < recovery.next_expiry_ms <= 600_000
    assert kinds == [
        (EventKind.STALLED, "a", "w1"),
        (EventKind.REQUEUED, "a", "w1"),
        (EventKind.STALLED, "b", "w2"),
        (EventKind.REQUEUED, "b", "w2"),
    ]
    assert not await storage.complete("a", "w1", b"late", 1000)
    claims = await storage.dequeue("w4", lease_ms=1000, timeout_ms=0, limit=5)
    assert [(c.id, c.attempt) for c in claims] == [("a", 2), ("b", 2)]


async def test_progress_needs_ownership(storage: PostgresStorage) -> None:
    await storage.enqueue("p", b"")
    assert not await storage.set_progress("p", "w", b"1")
    await _ids(storage)
    assert await storage.set_progress("p", "w", b"50%")
    assert not await storage.set_progress("p", "x", b"60%")
    record = await storage.get("p")
    assert record is not None and record.progress == b"50%"
