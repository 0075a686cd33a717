"""The chaos run in CI: 30 seconds of faults on each storage, and the bugs it found.

The faults come in shuffled rounds of every kind and the injector always
finishes the first round, so 30 s hold each kind at least once.

``tools/chaos.py`` runs as a real process (it starts its own server and role
processes); the test reads its JSON report and requires every check to pass.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from jobqueue import Job, JobCancelledError, JobQueueError, Queue
from jobqueue_file import FileStorage
from jobqueue_redis import RedisStorage
from redis.asyncio import Redis

from tests.server_support import cluster_or_skip, postgres_or_skip, server_or_skip

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("valkey", marks=pytest.mark.valkey),
        pytest.param("file", marks=pytest.mark.file),
        pytest.param("redis-cluster", marks=[pytest.mark.redis, pytest.mark.cluster]),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ],
)
def test_chaos_run_keeps_every_job(backend: str, tmp_path: Path) -> None:
    if backend == "redis-cluster":
        cluster_or_skip("redis")
    elif backend == "postgres":
        postgres_or_skip()
    elif backend != "file":
        server_or_skip(backend)  # type: ignore[arg-type]  # "redis" or "valkey" here
    report_path = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "chaos.py"), "--backend", backend, "--duration", "30",
         "--run-dir", str(tmp_path / "run"), "--json-out", str(report_path)],
        capture_output=True,
        text=True,
        timeout=140,
        cwd=ROOT,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert report_path.exists(), output
    report: dict[str, Any] = json.loads(report_path.read_text())
    failed = [row["name"] for row in report["rows"] if row["ok"] is False]
    assert not failed, output
    checks = {row["name"] for row in report["rows"] if row["ok"] is not None}
    assert {
        "lost jobs (record gone, never completed)",
        "every fault recovered",
        "re-executions not explained by a fault or an expired lease",
        "enqueue_and_wait returned a wrong result",
        "enqueue_and_wait errors without a reason (result not expired, server reachable)",
    } <= checks
    assert any(name.startswith("long jobs") for name in checks), output
    values = {row["name"]: row["value"] for row in report["rows"]}
    faults = values["faults injected"]
    server_fault = {"file": (), "redis-cluster": ("failover",)}.get(backend, ("restart-server",))
    for kind in ("kill-worker", "stop-worker", "kill-reaper", *server_fault):
        assert kind in faults, output
    if backend in ("redis", "valkey", "postgres"):  # the partition runs, or the report says why it could not
        assert "partition" in faults or "partition fault skipped" in values, output
    accepted = next(int(row["value"]) for row in report["rows"] if row["name"] == "accepted jobs")
    assert accepted > 100, output
    assert result.returncode == (0 if report["passed"] else 1), output


# ------------------------------------------------- regressions of bugs the chaos run found


@pytest.mark.redis
async def test_a_lost_done_event_does_not_strand_enqueue_and_wait(redis_server: str) -> None:
    redis_url = redis_server
    prefix = f"bug{uuid.uuid4().hex[:8]}"
    worker = RedisStorage(redis_url, prefix=prefix)  # its own connections: not the producer's
    queue: Queue[dict[str, int], str] = Queue(RedisStorage(redis_url, prefix=prefix), result_ttl=60)
    raw = Redis.from_url(redis_url)
    async with queue, worker, raw:
        enqueued = asyncio.Event()
        queue.on("enqueued", lambda job_id: enqueued.set())
        waiting = asyncio.create_task(queue.enqueue_and_wait("victim", {}, timeout=12))
        await enqueued.wait()
        [claim] = await worker.dequeue("w1", lease_ms=60_000, timeout_ms=1000)
        # the server closes the producer's pub/sub connection before it answers: the next
        # publish reaches nobody while redis-py reconnects (the contract's best effort)
        await raw.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # type: ignore[no-untyped-call]  # redis-py: unannotated
        assert await worker.complete(claim.id, "w1", b'"done"', 60_000)
        # other jobs keep finishing, one per second, as in any busy queue
        number = 0
        while not waiting.done() and number < 15:
            number += 1
            await worker.enqueue(f"other-{number}", claim.message)
            for other in await worker.dequeue("w1", lease_ms=60_000, timeout_ms=1000):
                await worker.complete(other.id, "w1", b'"other"', 60_000)
            await asyncio.wait({waiting}, timeout=1.0)
        # the waiters promise to re-read waited jobs every 5 s: the caller must have its result by now
        assert waiting.done()
        assert await waiting == "done"


@pytest.mark.redis
async def test_a_completed_job_whose_result_expired_is_not_reported_cancelled(redis_server: str) -> None:
    prefix = f"bug{uuid.uuid4().hex[:8]}"
    worker = RedisStorage(redis_server, prefix=prefix)  # its own connections: not the producer's
    queue: Queue[dict[str, int], str] = Queue(RedisStorage(redis_server, prefix=prefix))
    raw = Redis.from_url(redis_server)
    async with queue, worker, raw:
        enqueued = asyncio.Event()
        queue.on("enqueued", lambda job_id: enqueued.set())
        waiting = asyncio.create_task(queue.enqueue_and_wait("victim", {}, timeout=20))
        await enqueued.wait()
        [claim] = await worker.dequeue("w1", lease_ms=60_000, timeout_ms=1000)
        await raw.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # type: ignore[no-untyped-call]  # redis-py: unannotated
        assert await worker.complete(claim.id, "w1", b'"done"', 200)  # the done event is lost
        await asyncio.wait({waiting}, timeout=15)  # the next re-check finds no record
        assert waiting.done()
        with pytest.raises(JobQueueError) as raised:  # the result is gone: an error, but not a false cancel
            await waiting
        assert not isinstance(raised.value, JobCancelledError)


@pytest.mark.file
async def test_a_stopped_worker_leaves_no_directory(tmp_path: Path) -> None:
    storage = FileStorage(tmp_path)
    queue: Queue[dict[str, int], int] = Queue(storage, block_timeout=0.2)

    @queue.execute
    async def handle(job: Job[dict[str, int]]) -> int:
        return 1

    async with queue:
        assert await queue.enqueue_and_wait("one", {}, timeout=10) == 1
    async with FileStorage(tmp_path) as check:
        assert await check.list_workers() == []
    left = await asyncio.to_thread(lambda: list(tmp_path.glob("*/processing/*")))
    assert left == []
