"""Queue suite: deduplication, request/response, results and their TTL, scheduling, namespaces."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jobqueue import (
    Job,
    JobCancelledError,
    JobFailedError,
    JobQueueError,
    JobState,
    JobTimeoutError,
)
from jobqueue.storage import Storage

from ._helpers import monitoring_of, wait_until
from ._queue_suite_base import MakeQueue, QueueSuiteBase

__all__ = ["DedupSuite"]


async def double(job: Job[dict[str, Any]]) -> dict[str, Any]:
    return {"y": job.payload["x"] * 2}


class DedupSuite(QueueSuiteBase):
    """The dedup table of the README, through ``Queue``."""

    async def test_enqueue_new_id_is_queued_and_runs(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        queue.execute(double)
        async with queue:
            result = await queue.enqueue("job-1", {"x": 1})
            assert result.status == "queued", "rule: a new id is queued"
            await wait_until(
                lambda: _state_is(queue, "job-1", JobState.COMPLETED), message="rule: a queued job runs"
            )
            assert await queue.get_result("job-1") == {"y": 2}, "rule: get_result returns the stored result"

    async def test_duplicate_of_a_waiting_job_changes_nothing(self, make_queue: MakeQueue) -> None:
        async with make_queue() as queue:  # no handler: jobs stay queued
            await queue.enqueue("dup", {"x": 1}, max_attempts=5, result_ttl=60)
            again = await queue.enqueue("dup", {"x": 99}, max_attempts=1, result_ttl=1)
            assert again.status == "duplicate", "rule: enqueue of a queued id is a duplicate"
            assert again.existing_state is JobState.QUEUED, "rule: a duplicate reports the existing state"
        worker = make_queue()
        seen: list[Job[Any]] = []

        @worker.execute
        async def record(job: Job[Any]) -> int:
            seen.append(job)
            return 0

        async with worker:
            await wait_until(lambda: _true(bool(seen)), message="rule: the queued job runs")
        assert seen[0].payload == {"x": 1}, "rule: the first accepted enqueue fixes the payload"
        assert seen[0].max_attempts == 5, "rule: the first accepted enqueue fixes max_attempts"

    async def test_completed_job_returns_cached_result(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        calls: list[str] = []

        @queue.execute
        async def handler(job: Job[Any]) -> str:
            calls.append(job.id)
            return "done"

        async with queue:
            assert await queue.enqueue_and_wait("c", None, timeout=5) == "done", (
                "rule: a job runs and returns"
            )
            again = await queue.enqueue("c", None)
            assert again.status == "completed", "rule: enqueue of a completed id returns completed"
            assert again.result == "done", "rule: a completed duplicate carries the cached result"
            assert await queue.enqueue_and_wait("c", None, timeout=5) == "done", (
                "rule: enqueue_and_wait of a completed id returns the cached result at once"
            )
        assert calls == ["c"], "rule: a completed job is not run again while its result lives"

    async def test_failed_job_is_a_failed_duplicate(self, make_queue: MakeQueue) -> None:
        queue = make_queue(max_attempts=1)

        @queue.execute
        async def handler(job: Job[Any]) -> None:
            raise ValueError("bad input")

        async with queue:
            with pytest.raises(JobFailedError) as failure:
                await queue.enqueue_and_wait("f", None, timeout=5)
            assert failure.value.error["type"] == "ValueError", "rule: the stored error keeps its type"
            assert failure.value.error["message"] == "bad input", "rule: the stored error keeps its message"
            again = await queue.enqueue("f", None)
            assert (again.status, again.existing_state) == ("duplicate", JobState.FAILED), (
                "rule: enqueue of a failed id is a duplicate (failed)"
            )
            with pytest.raises(JobFailedError):
                async with asyncio.timeout(1.0):
                    await queue.enqueue_and_wait("f", None, timeout=5)

    async def test_waiters_join_the_running_job(self, make_queue: MakeQueue) -> None:
        queue = make_queue(concurrency=4)
        release = asyncio.Event()
        calls: list[str] = []

        @queue.execute
        async def handler(job: Job[Any]) -> str:
            calls.append(job.id)
            await release.wait()
            return "shared"

        async with queue:
            waits = [asyncio.create_task(queue.enqueue_and_wait("j", None, timeout=5)) for _ in range(5)]
            await wait_until(lambda: _true(bool(calls)), message="rule: the job starts")
            release.set()
            assert await asyncio.gather(*waits) == ["shared"] * 5, "rule: every waiter gets the one result"
        assert calls == ["j"], "rule: concurrent enqueue_and_wait of one id runs the job once"

    async def test_wait_timeout_raises_job_timeout_error(self, make_queue: MakeQueue) -> None:
        async with make_queue() as queue:  # no handler: the job never finishes
            with pytest.raises(JobTimeoutError) as timeout:
                await queue.enqueue_and_wait("slow", None, timeout=0.2)
            assert isinstance(timeout.value, TimeoutError), "rule: JobTimeoutError is a TimeoutError"
            status = await queue.get_status("slow")
            assert status is not None and status.state is JobState.QUEUED, (
                "rule: a timed-out wait leaves the job"
            )

    async def test_cancel_while_waiting_raises_cancelled(self, make_queue: MakeQueue) -> None:
        async with make_queue() as queue:
            waiter = asyncio.create_task(queue.enqueue_and_wait("w", None, timeout=5))
            await wait_until(lambda: _state_is(queue, "w", JobState.QUEUED), message="the job is queued")
            assert await queue.cancel("w") == "cancelled", "rule: a queued job can be cancelled"
            with pytest.raises(JobCancelledError):
                await waiter

    async def test_enqueue_and_wait_needs_a_started_queue(
        self, make_queue: MakeQueue, storage: Storage
    ) -> None:
        queue = make_queue()
        with pytest.raises(JobQueueError, match="started"):
            await queue.enqueue_and_wait("never", None, timeout=1)
        assert await storage.get("never") is None, "rule: a refused call writes nothing"

    async def test_result_expiry_frees_the_id(self, make_queue: MakeQueue, storage: Storage) -> None:
        queue = make_queue()
        queue.execute(double)
        async with queue:
            assert await queue.enqueue_and_wait("ttl", {"x": 1}, result_ttl=0.3, timeout=5) == {"y": 2}, (
                "rule: enqueue_and_wait returns the handler's result"
            )
            await wait_until(
                lambda: _gone(storage, "ttl"), message="rule: an expired result leaves no record", timeout=5
            )
            assert await queue.get_status("ttl") is None, "rule: an expired job has no status"
            monitoring = monitoring_of(storage)
            if monitoring is not None:
                counts = await monitoring.counts()
                assert counts[JobState.COMPLETED] == 0, "rule: an expired job is not counted"
            again = await queue.enqueue("ttl", {"x": 1})
            assert again.status == "queued", "rule: an expired id can be enqueued again"

    async def test_update_result_ttl(self, make_queue: MakeQueue, storage: Storage) -> None:
        queue = make_queue()
        queue.execute(double)
        async with queue:
            assert await queue.update_result_ttl("missing", 10) == "not_found", (
                "rule: update_result_ttl of a missing job"
            )
            await queue.enqueue_and_wait("u", {"x": 1}, result_ttl=0.5, timeout=5)
            assert await queue.update_result_ttl("u", 60) == "updated", (
                "rule: update_result_ttl of a finished job"
            )
        async with make_queue() as producer:
            await producer.enqueue("q", {"x": 1})
            assert await producer.update_result_ttl("q", 60) == "not_terminal", (
                "rule: update_result_ttl of a queued job is not_terminal"
            )
        await asyncio.sleep(0.7)  # past the original TTL: the update must have moved it
        assert await storage.get("u") is not None, "rule: update_result_ttl extends the record's life"

    async def test_delay_schedules_the_job(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        started: list[float] = []
        loop = asyncio.get_running_loop()

        @queue.execute
        async def handler(job: Job[Any]) -> None:
            started.append(loop.time())

        async with queue:
            t0 = loop.time()
            await queue.enqueue("later", None, delay=0.4)
            await queue.enqueue("at", None, run_at=datetime.now(UTC) + timedelta(seconds=0.4))
            await wait_until(lambda: _true(len(started) == 2), message="rule: scheduled jobs run when due")
        assert min(started) - t0 >= 0.35, "rule: a delayed job does not run before its delay"

    async def test_namespaces_are_isolated(self, make_queue: MakeQueue) -> None:
        a = make_queue(name="ns-a")
        b = make_queue(name="ns-b")
        ran: list[str] = []

        @b.execute
        async def handler(job: Job[Any]) -> None:
            ran.append(job.id)

        async with a, b:
            await a.enqueue("same-id", None)
            assert (await b.enqueue("same-id", None)).status == "queued", "rule: ids are per namespace"
            await wait_until(lambda: _true(ran == ["same-id"]), message="the b job runs")
            await asyncio.sleep(0.3)
            assert ran == ["same-id"], "rule: a worker never takes another namespace's jobs"
            status = await a.get_status("same-id")
            assert status is not None and status.state is JobState.QUEUED, "rule: namespaces are isolated"


async def _state_is(queue: Any, job_id: str, state: JobState) -> bool:
    status = await queue.get_status(job_id)
    return status is not None and status.state is state


async def _gone(storage: Storage, job_id: str) -> bool:
    return await storage.get(job_id) is None


async def _true(value: bool) -> bool:
    return value
