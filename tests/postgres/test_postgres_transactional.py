"""Transactional enqueue: a job enqueued on the application's connection exists if and only if it commits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import asyncpg
import pytest
from jobqueue import Job, MemoryStorage, Queue
from jobqueue.storage import Channel, EventKind, NewJob, StorageError
from jobqueue_postgres import PostgresStorage

pytestmark = pytest.mark.postgres

# An application process: in one transaction, writes its own row and enqueues a job, then hangs before commit.
APPLICATION = """
import asyncio, sys
import asyncpg
from jobqueue_postgres import PostgresStorage

async def main(url, schema):
    storage = PostgresStorage(url, schema=schema)
    conn = await asyncpg.connect(url)
    tx = conn.transaction()
    await tx.start()
    await conn.execute(f"INSERT INTO \\"{schema}\\".orders VALUES ('crash')")
    outcome = await storage.enqueue_on(conn, "crash-job", b"m")
    print("enqueued", outcome.accepted, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.fixture
async def orders(admin: asyncpg.Connection, storage: PostgresStorage) -> None:
    """The application's own table, beside the storage's schema."""
    await admin.execute(f'CREATE TABLE "{storage.schema}".orders (id text)')
    await admin.execute(f'SET search_path TO "{storage.schema}"')


async def test_a_committed_transaction_stores_the_job_and_wakes_a_worker(
    storage: PostgresStorage, admin: asyncpg.Connection, orders: None
) -> None:
    claim = asyncio.create_task(storage.dequeue("w", lease_ms=10_000, timeout_ms=30_000))
    async with admin.transaction():
        await admin.execute("INSERT INTO orders VALUES ('o1')")
        outcomes = await storage.enqueue_many_on(admin, [NewJob("job-1", b"m"), NewJob("job-2", b"m")])
        assert [o.accepted for o in outcomes] == [True, True]
        assert await storage.get("job-1") is None  # not visible outside the transaction yet
    claims = await asyncio.wait_for(claim, 10)
    assert [c.id for c in claims] == ["job-1"]
    assert await storage.get("job-2") is not None


async def test_a_rolled_back_transaction_leaves_no_job_and_no_event(
    storage: PostgresStorage, admin: asyncpg.Connection, orders: None
) -> None:
    async with storage.subscribe(Channel.EVENTS) as events:
        transaction = admin.transaction()
        await transaction.start()
        await admin.execute("INSERT INTO orders VALUES ('o1')")
        assert (await storage.enqueue_on(admin, "job-1", b"m")).accepted
        await transaction.rollback()
        await storage.enqueue(
            "marker", b"m"
        )  # events arrive in commit order: this one comes first if nothing leaked
        event = await asyncio.wait_for(anext(events), 10)
    assert (event.kind, event.job_id) == (EventKind.ENQUEUED, "marker")
    assert await storage.get("job-1") is None
    assert await admin.fetchval("SELECT count(*) FROM orders") == 0
    assert (await storage.enqueue("job-1", b"m")).accepted


async def test_dedup_holds_inside_the_transaction(
    storage: PostgresStorage, admin: asyncpg.Connection, orders: None
) -> None:
    await storage.enqueue("existing", b"first")
    async with admin.transaction():
        duplicate = await storage.enqueue_on(admin, "existing", b"second")
        assert (
            not duplicate.accepted
            and duplicate.existing is not None
            and duplicate.existing.message == b"first"
        )
        assert (await storage.enqueue_on(admin, "fresh", b"m")).accepted
        again = await storage.enqueue_on(admin, "fresh", b"m2")  # sees its own uncommitted row
        assert not again.accepted and again.existing is not None and again.existing.message == b"m"


async def test_a_crash_before_commit_leaves_no_job(
    postgres_url: str, storage: PostgresStorage, admin: asyncpg.Connection, orders: None
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", APPLICATION, postgres_url, storage.schema, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.split() == [b"enqueued", b"True"]
        assert await storage.get("crash-job") is None
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    # The server rolls the transaction back when it sees the client gone; the id is then free.
    outcome = await asyncio.wait_for(storage.enqueue("crash-job", b"after"), 30)
    assert outcome.accepted
    record = await storage.get("crash-job")
    assert record is not None and record.message == b"after"
    assert await admin.fetchval("SELECT count(*) FROM orders") == 0


async def test_a_failing_statement_is_a_storage_error_and_validation_comes_first(
    postgres_url: str, schema: str, storage: PostgresStorage, admin: asyncpg.Connection
) -> None:
    with pytest.raises(ValueError, match="jobs must hold"):
        await storage.enqueue_many_on(admin, [])
    with pytest.raises(TypeError, match="message must be bytes"):
        await storage.enqueue_on(admin, "x", "text")  # type: ignore[arg-type]
    missing = PostgresStorage(postgres_url, schema=f"{schema}_missing")  # never connected: no schema
    with pytest.raises(StorageError, match="postgres enqueue"):
        await missing.enqueue_on(admin, "x", b"m")


@pytest.mark.parametrize("commit", [True, False])
async def test_a_concurrent_enqueue_of_the_same_id_waits_for_the_transaction(
    storage: PostgresStorage, admin: asyncpg.Connection, commit: bool
) -> None:
    transaction = admin.transaction()
    await transaction.start()
    assert (await storage.enqueue_on(admin, "same", b"in-tx")).accepted
    elsewhere = asyncio.create_task(storage.enqueue("same", b"elsewhere"))
    done, _ = await asyncio.wait([elsewhere], timeout=0.3)
    assert not done, "rule: the other enqueue waits for the transaction that holds the id"
    await (transaction.commit() if commit else transaction.rollback())
    outcome = await asyncio.wait_for(elsewhere, 10)
    assert outcome.accepted is not commit
    record = await storage.get("same")
    assert record is not None and record.message == (b"in-tx" if commit else b"elsewhere")


async def test_queue_enqueue_on_the_application_connection_commits_or_rolls_back_with_it(
    storage: PostgresStorage, admin: asyncpg.Connection, orders: None
) -> None:
    queue: Queue[dict[str, str], str] = Queue(storage)

    @queue.execute
    async def ship(job: Job[dict[str, str]]) -> str:
        return f"shipped {job.payload['order']}"

    async with queue:
        with contextlib.suppress(RuntimeError):
            async with admin.transaction():
                await admin.execute("INSERT INTO orders VALUES ('lost')")
                result = await queue.enqueue("ship-lost", {"order": "lost"}, connection=admin)
                assert result.status == "queued"
                raise RuntimeError("the application rolls back")
        async with admin.transaction():
            await admin.execute("INSERT INTO orders VALUES ('kept')")
            results = await queue.enqueue_many([("ship-kept", {"order": "kept"})], connection=admin)
            assert [r.status for r in results] == ["queued"]
        assert await queue.wait("ship-kept", timeout=30) == "shipped kept"
        assert await queue.get_status("ship-lost") is None, "rule: a rolled-back enqueue leaves no job"


async def test_connection_is_refused_by_a_storage_without_transactional_enqueue() -> None:
    queue: Queue[int, int] = Queue(MemoryStorage())
    async with queue:
        with pytest.raises(TypeError, match="transactional_enqueue"):
            await queue.enqueue("j", 1, connection=object())
