"""Job state on PostgreSQL: expiry and the sweep, TTL updates, monitoring, the leader lock, hostile ids."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from jobqueue import JobState
from jobqueue.storage import NewJob, now_ms
from jobqueue_postgres import PostgresStorage

pytestmark = pytest.mark.postgres


async def _rows(admin: asyncpg.Connection, schema: str, table: str) -> int:
    count: int = await admin.fetchval(f'SELECT count(*) FROM "{schema}".{table}')
    return count


async def _finish_all(storage: PostgresStorage, ttl_ms: int, *, fail: bool = False) -> None:
    for claim in await storage.dequeue("w", lease_ms=60_000, timeout_ms=0, limit=1000):
        if fail:
            assert await storage.fail(claim.id, "w", b"e", ttl_ms)
        else:
            assert await storage.complete(claim.id, "w", b"r", ttl_ms)


async def test_expired_results_are_invisible_at_once_then_swept_leaving_no_row(
    storage: PostgresStorage, admin: asyncpg.Connection, schema: str
) -> None:
    await storage.enqueue_many([NewJob(f"j{i}", b"") for i in range(30)])
    await _finish_all(storage, 300)
    await storage.register_worker("w", 300)
    await storage.acquire_lock("leader", "me", 300)
    await asyncio.sleep(0.35)
    assert await storage.get_many(["j0", "j29"]) == [None, None]
    assert sum((await storage.counts()).values()) == 0
    assert (await storage.list_jobs()).records == []
    assert await storage.list_workers() == []
    assert await storage.list_namespaces() == []
    assert await _rows(admin, schema, "jobs") == 30  # invisible, not yet deleted
    assert (await storage.enqueue("j0", b"again")).accepted  # an expired record frees its id
    await storage.cancel("j0")
    await storage.recover_stalled()
    for table in ("jobs", "workers", "locks"):
        assert await _rows(admin, schema, table) == 0, table


async def test_the_sweep_covers_every_namespace(
    storage: PostgresStorage, admin: asyncpg.Connection, schema: str
) -> None:
    other = storage.namespace("idle")
    await other.enqueue("x", b"")
    await _finish_all(other, 100)
    await asyncio.sleep(0.15)
    await storage.recover_stalled()
    assert await _rows(admin, schema, "jobs") == 0


async def test_update_ttl_outcomes(storage: PostgresStorage) -> None:
    await storage.enqueue_many([NewJob("done", b""), NewJob("running", b"")])
    await storage.dequeue("w", lease_ms=60_000, timeout_ms=0, limit=1)
    await storage.complete("done", "w", b"r", 30_000)
    assert await storage.update_ttl("done", 600_000) == "updated"
    assert await storage.update_ttl("running", 1000) == "not_terminal"
    assert await storage.update_ttl("nope", 1000) == "not_found"
    record = await storage.get("done")
    assert record is not None and record.expires_at is not None
    assert record.expires_at > now_ms() + 500_000, "the new TTL counts from the update"
    assert await storage.update_ttl("done", 1) == "updated"
    # A 1 ms TTL: gone once the server's clock has moved a millisecond, a few round trips at most.
    looks = [await storage.get("done") for _ in range(200)]
    assert looks[-1] is None


async def test_counts_listing_purge_and_retry_failed(storage: PostgresStorage) -> None:
    await storage.enqueue_many([NewJob(f"ok-{i}", b"") for i in range(3)] + [NewJob("bad", b"")])
    await storage.enqueue("later", b"", delay_ms=60_000)
    claims = await storage.dequeue("w", lease_ms=60_000, timeout_ms=0, limit=4)
    for claim in claims[:3]:
        await storage.complete(claim.id, "w", b"r", 60_000)
    await storage.fail("bad", "w", b"e", 60_000)
    counts = await storage.counts()
    assert counts == {
        JobState.QUEUED: 1,
        JobState.PROCESSING: 0,
        JobState.FAILING: 0,
        JobState.COMPLETED: 3,
        JobState.FAILED: 1,
    }
    first = await storage.list_jobs(prefix="ok-", limit=2)
    assert [r.id for r in first.records] == ["ok-2", "ok-1"] and first.next_cursor is not None
    rest = await storage.list_jobs(prefix="ok-", cursor=first.next_cursor, limit=2)
    assert [r.id for r in rest.records] == ["ok-0"] and rest.next_cursor is None
    assert [r.id for r in (await storage.list_jobs(state=JobState.FAILED)).records] == ["bad"]
    with pytest.raises(ValueError, match="cursor"):
        await storage.list_jobs(cursor="garbage")
    assert await storage.retry_failed("bad")
    assert not await storage.retry_failed("ok-0")
    record = await storage.get("bad")
    assert record is not None and (record.state, record.attempts, record.error) == (JobState.QUEUED, 0, None)
    assert await storage.purge([JobState.COMPLETED]) == 3
    with pytest.raises(ValueError, match="purge only deletes"):
        await storage.purge([JobState.QUEUED])


async def test_workers_are_listed_while_live_or_holding_jobs(storage: PostgresStorage) -> None:
    await storage.register_worker("idle", 60_000)
    await storage.register_worker("busy", 60_000)
    await storage.enqueue("j", b"")
    await storage.dequeue("busy", lease_ms=60_000, timeout_ms=0)
    await storage.unregister_worker("idle")
    await storage.unregister_worker("busy")
    workers = await storage.list_workers()
    assert [(w.id, w.jobs) for w in workers] == [("busy", ("j",))]
    assert workers[0].expires_at <= workers[0].last_seen + 60_000
    assert await storage.list_namespaces() == ["default"]


async def test_the_leader_lock_is_a_lease(storage: PostgresStorage) -> None:
    assert await storage.acquire_lock("leader", "a", 2000)
    assert not await storage.acquire_lock("leader", "b", 2000)
    assert await storage.acquire_lock("leader", "a", 1000)  # renewed (here for less)
    assert not await storage.namespace("other").release_lock("leader", "a")  # locks are per namespace
    await asyncio.sleep(1.05)
    assert await storage.acquire_lock("leader", "b", 60_000)  # a's lease ran out
    assert not await storage.release_lock("leader", "a")
    assert await storage.release_lock("leader", "b")


HOSTILE = ["user:42", "a\x00b", "%", "_", "'; DROP TABLE jobs; --", "../../x", "🙂" * 200, "é", "\\", "$1"]


@pytest.mark.parametrize("namespace", ["default", "ns\x00'; DROP SCHEMA x; --", "%"])
async def test_hostile_ids_and_namespaces_are_data(
    storage: PostgresStorage, namespace: str, admin: asyncpg.Connection, schema: str
) -> None:
    view = storage.namespace(namespace)
    outcomes = await view.enqueue_many([NewJob(job_id, job_id.encode()) for job_id in HOSTILE])
    assert all(o.accepted for o in outcomes)
    records = await view.get_many(HOSTILE)
    assert [r.id if r else None for r in records] == HOSTILE
    assert [r.id for r in (await view.list_jobs(prefix="%")).records] == ["%"]
    assert [r.id for r in (await view.list_jobs(prefix="a\x00")).records] == ["a\x00b"]
    claims = await view.dequeue("w\x00'", lease_ms=60_000, timeout_ms=0, limit=100)
    assert [c.id for c in claims] == HOSTILE
    assert await view.complete("a\x00b", "w\x00'", b"r", 60_000)
    assert await view.list_namespaces() == [namespace]
    assert await _rows(admin, schema, "jobs") == len(HOSTILE)
