"""Queue suite: per-job options (priority, job_timeout), ``enqueue_many``, ``wait`` and progress."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from jobqueue import Job, JobFailedError, JobNotFoundError, JobState

from ._helpers import wait_until
from ._queue_suite_base import MakeQueue, QueueSuiteBase, Recorder
from ._queue_suite_dedup import _true

__all__ = ["OptionsSuite"]


class OptionsSuite(QueueSuiteBase):
    """What ``enqueue`` options and batches do, end to end."""

    async def test_higher_priority_runs_first(self, make_queue: MakeQueue) -> None:
        async with make_queue() as producer:  # no handler: the jobs wait until a worker starts
            for job_id, priority in [("low", 0), ("urgent", 10), ("normal", 1), ("urgent-2", 10)]:
                await producer.enqueue(job_id, None, priority=priority)
        worker = make_queue(concurrency=1)
        ran: list[str] = []

        @worker.execute
        async def handler(job: Job[Any]) -> None:
            ran.append(job.id)

        async with worker:
            await wait_until(lambda: _true(len(ran) == 4), message="rule: every queued job runs")
        assert ran == ["urgent", "urgent-2", "normal", "low"], (
            "rule: priorities: higher priority runs first, FIFO within a priority"
        )

    async def test_enqueue_many_results_in_order_with_dedup(self, make_queue: MakeQueue) -> None:
        async with make_queue() as producer:
            await producer.enqueue("old", None)
            results = await producer.enqueue_many([("a", 1), ("old", 2), ("b", 3), ("a", 4)])
            assert [(r.status, r.existing_state) for r in results] == [
                ("queued", None),
                ("duplicate", JobState.QUEUED),
                ("queued", None),
                ("duplicate", JobState.QUEUED),
            ], "rule: enqueue_many returns results in order, dedup per id (within the batch too)"
            with pytest.raises(ValueError, match="at least one"):
                await producer.enqueue_many([])

    async def test_wait_returns_the_result_of_an_existing_job(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        gate = asyncio.Event()

        @queue.execute
        async def handler(job: Job[Any]) -> int:
            await gate.wait()
            return 42

        async with queue:
            await queue.enqueue("existing", None)
            waiter = asyncio.create_task(queue.wait("existing", timeout=10))
            gate.set()
            assert await waiter == 42, "rule: wait returns the result of a job enqueued earlier"
            assert await queue.wait("existing", timeout=5) == 42, (
                "rule: wait on a finished job returns at once"
            )
            with pytest.raises(JobNotFoundError):
                await queue.wait("never-enqueued", timeout=5)

    async def test_per_job_timeout_overrides_the_queue(self, make_queue: MakeQueue) -> None:
        queue = make_queue(max_attempts=1, job_timeout=30)

        @queue.execute
        async def handler(job: Job[Any]) -> str:
            await asyncio.sleep(60 if job.id == "hung" else 0)
            return "ok"

        async with queue:
            with pytest.raises(JobFailedError) as failure:
                await queue.enqueue_and_wait("hung", None, job_timeout=0.2, timeout=10)
            assert failure.value.error["code"] == "JOB_TIMEOUT", (
                "rule: a per-job job_timeout bounds its attempt"
            )
            assert await queue.enqueue_and_wait("quick", None, timeout=5) == "ok", (
                "rule: other jobs run as usual"
            )

    async def test_report_progress_is_stored_and_emitted(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        events = Recorder()
        events.watch(queue, "progress")
        reported = asyncio.Event()
        finish = asyncio.Event()
        stored: list[bool] = []

        @queue.execute
        async def handler(job: Job[Any]) -> str:
            stored.append(await job.report_progress({"pct": 50}))
            reported.set()
            await finish.wait()
            return "done"

        async with queue:
            await queue.enqueue("p", None)
            async with asyncio.timeout(5):
                await reported.wait()
            assert stored == [True], "rule: report_progress of a running job is stored (returns True)"
            status = await queue.get_status("p")
            assert status is not None and status.progress == {"pct": 50}, (
                "rule: the last progress value is readable as JobStatus.progress"
            )
            finish.set()
            assert await queue.wait("p", timeout=5) == "done", "rule: a job reporting progress completes"
        assert events.seen == [("progress", ("p", {"pct": 50}))], "rule: report_progress emits progress"
