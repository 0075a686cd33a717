"""Queue suite: retries, failures, timeouts, abort, cancel, poison messages, hooks and events."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from jobqueue import (
    Backoff,
    ExecutionContext,
    Job,
    JobFailedError,
    JobState,
    MaxRetriesError,
)
from jobqueue.storage import Storage

from ._helpers import wait_until
from ._queue_suite_base import MakeQueue, QueueSuiteBase, Recorder
from ._queue_suite_dedup import _state_is, _true

__all__ = ["OutcomesSuite"]


class OutcomesSuite(QueueSuiteBase):
    """What happens to a job after it is claimed."""

    async def test_retry_with_backoff_then_success(self, make_queue: MakeQueue) -> None:
        queue = make_queue(max_attempts=3, retry_backoff=Backoff(base=0.2, factor=2, jitter=0))
        times: list[float] = []
        events = Recorder()
        events.watch(queue, "failing", "completed")

        @queue.execute
        async def flaky(job: Job[Any]) -> int:
            times.append(time.monotonic())
            if job.attempt < 3:
                raise RuntimeError(f"attempt {job.attempt}")
            return job.attempt

        async with queue:
            assert await queue.enqueue_and_wait("r", None, timeout=10) == 3, "rule: a retried job can succeed"
        assert len(times) == 3, "rule: a failing job is retried until it succeeds"
        assert times[1] - times[0] >= 0.18, "rule: the first retry waits the base backoff"
        assert times[2] - times[1] >= 0.38, "rule: backoff doubles per attempt"
        assert events.names("r") == ["failing", "failing", "completed"], "rule: failing is emitted per retry"

    async def test_last_failure_stores_the_error(self, make_queue: MakeQueue) -> None:
        queue = make_queue(max_attempts=2)

        @queue.execute
        async def broken(job: Job[Any]) -> None:
            raise KeyError("nope")

        async with queue:
            with pytest.raises(MaxRetriesError) as failure:
                await queue.enqueue_and_wait("e", None, timeout=5)
            error = failure.value.error
            assert error["code"] == "MAX_RETRIES", (
                "rule: a job that used every attempt fails with MAX_RETRIES"
            )
            assert error["type"] == "KeyError" and "nope" in error["message"], "rule: the last error is kept"
            assert "Traceback" in error["traceback"], "rule: the stored error carries the traceback"
            status = await queue.get_status("e")
            assert status is not None and status.state is JobState.FAILED and status.attempts == 2, (
                "rule: a job that used every attempt is failed, its attempts counted"
            )
            assert status.error is not None and status.error["code"] == "MAX_RETRIES", (
                "rule: the status of a job that used every attempt carries MAX_RETRIES"
            )

    async def test_job_timeout_fails_a_hung_attempt(self, make_queue: MakeQueue) -> None:
        queue = make_queue(max_attempts=1, job_timeout=0.2)

        @queue.execute
        async def hang(job: Job[Any]) -> None:
            await asyncio.sleep(60)

        async with queue:
            with pytest.raises(JobFailedError) as failure:
                await queue.enqueue_and_wait("hung", None, timeout=5)
        assert failure.value.error["code"] == "JOB_TIMEOUT", "rule: job_timeout bounds one attempt"

    async def test_sync_handler_runs_in_a_thread(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        loop_thread = threading.get_ident()

        @queue.execute
        def blocking(job: Job[Any]) -> bool:
            time.sleep(0.01)  # a blocking call must not stall the event loop
            return threading.get_ident() != loop_thread

        async with queue:
            assert await queue.enqueue_and_wait("s", None, timeout=5) is True, (
                "rule: def handlers run in a thread"
            )

    async def test_abort_cancels_a_running_async_handler(self, make_queue: MakeQueue) -> None:
        queue = make_queue(max_attempts=3)
        started = asyncio.Event()
        cancelled = asyncio.Event()

        @queue.execute
        async def long(job: Job[Any]) -> None:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async with queue:
            waiter = asyncio.create_task(queue.enqueue_and_wait("a", None, timeout=10))
            async with asyncio.timeout(5):
                await started.wait()
            assert await queue.abort("a") == "processing", "rule: abort of a running job reports processing"
            with pytest.raises(JobFailedError) as failure:
                await waiter
            assert cancelled.is_set(), "rule: an aborted async handler is cancelled"
            assert failure.value.error["code"] == "CANCELLED", "rule: an aborted attempt fails as CANCELLED"
            status = await queue.get_status("a")
            assert status is not None and status.attempts == 1, "rule: an aborted job is not retried"

    async def test_abort_sets_the_event_of_a_sync_handler(self, make_queue: MakeQueue) -> None:
        queue = make_queue()
        started = threading.Event()

        @queue.execute
        def polite(job: Job[Any]) -> str:
            started.set()
            return "stopped" if job.aborted.wait(10) else "ran out"

        async with queue:
            await queue.enqueue("sync-abort", None)
            assert await asyncio.to_thread(started.wait, 5), "rule: a queued job runs"
            assert await queue.abort("sync-abort") == "processing", (
                "rule: abort of a running job reports processing"
            )
            await wait_until(
                lambda: _state_is(queue, "sync-abort", JobState.FAILED),
                message="rule: an aborted sync attempt fails",
            )

    async def test_cancel_table(self, make_queue: MakeQueue, storage: Storage) -> None:
        async with make_queue() as producer:
            assert await producer.cancel("nothing") == "not_found", "rule: cancel of an unknown id"
            await producer.enqueue("q", None)
            assert await producer.cancel("q") == "cancelled", "rule: a queued job can be cancelled"
            assert await storage.get("q") is None, "rule: a cancelled job leaves no record"
            assert (await producer.enqueue("q", None)).status == "queued", "rule: cancel frees the id"
            assert await producer.cancel("q") == "cancelled", "rule: a queued job can be cancelled"
        worker = make_queue(max_attempts=1)
        gate = asyncio.Event()
        ran: list[str] = []

        @worker.execute
        async def handler(job: Job[Any]) -> str:
            ran.append(job.id)
            if job.id == "slow":
                await gate.wait()
            if job.id == "bad":
                raise RuntimeError("x")
            return "ok"

        async with worker:
            await worker.enqueue_and_wait("done", None, timeout=5)
            assert await worker.cancel("done") == "completed", "rule: a completed job is not cancellable"
            await worker.enqueue("slow", None)
            await wait_until(lambda: _true("slow" in ran), message="the slow job starts")
            assert await worker.cancel("slow") == "processing", "rule: a started job is not cancellable"
            gate.set()
            with pytest.raises(JobFailedError):
                await worker.enqueue_and_wait("bad", None, timeout=5)
            assert await worker.cancel("bad") == "cancelled", "rule: cancel clears a failed job"
            assert await storage.get("bad") is None, "rule: a cleared failed job frees its id"
        assert ran.count("q") == 0, "rule: a cancelled job never starts"

    async def test_poison_message_fails_and_worker_goes_on(
        self, make_queue: MakeQueue, storage: Storage
    ) -> None:
        outcome = await storage.enqueue("poison", b"\xc1 not msgpack at all")
        assert outcome.accepted, "rule: enqueue accepts a new id"
        queue = make_queue()
        queue.execute(lambda job: "fine")
        async with queue:
            assert await queue.enqueue_and_wait("healthy", None, timeout=5) == "fine", (
                "rule: a poison message does not stop the worker"
            )
            await wait_until(
                lambda: _state_is(queue, "poison", JobState.FAILED), message="rule: a poison message fails"
            )
            status = await queue.get_status("poison")
            assert status is not None and status.error is not None, "rule: a poison message stores an error"
            assert status.error["code"] == "DECODE_ERROR", "rule: a poison message fails with DECODE_ERROR"

    async def test_after_execution_can_change_what_is_stored(
        self, make_queue: MakeQueue, storage: Storage
    ) -> None:
        contexts: list[ExecutionContext[Any]] = []

        def hook(ctx: ExecutionContext[Any]) -> None:
            contexts.append(ctx)
            ctx.result = {"wrapped": ctx.result}
            ctx.ttl = 0.3

        queue = make_queue(after_execution=hook)
        queue.execute(lambda job: 7)
        async with queue:
            assert await queue.enqueue_and_wait("h", None, timeout=5) == {"wrapped": 7}, (
                "rule: after_execution can replace the result"
            )
            await wait_until(lambda: _gone(storage, "h"), message="rule: after_execution can change the TTL")
        ctx = contexts[0]
        assert (ctx.id, ctx.status, ctx.attempt, ctx.worker_id) == ("h", "completed", 1, queue.worker_id), (
            "rule: after_execution sees the job's id, outcome, attempt and worker"
        )
        assert ctx.duration >= 0 and ctx.finished_at >= ctx.started_at, (
            "rule: after_execution sees the timing"
        )

    async def test_events_and_a_raising_callback(self, make_queue: MakeQueue) -> None:
        queue = make_queue(max_attempts=1)
        events = Recorder()
        events.watch(queue, "started", "enqueued", "processing", "completed", "failed", "error", "stopped")

        def explode(*args: Any) -> None:
            raise RuntimeError("callback bug")

        unsubscribe = queue.on("completed", explode)

        @queue.execute
        async def handler(job: Job[Any]) -> str:
            if job.id == "bad":
                raise ValueError("no")
            return "ok"

        async with queue:
            assert await queue.enqueue_and_wait("good", None, timeout=5) == "ok", (
                "rule: a job runs and returns"
            )

            async def completed_emitted() -> bool:
                # the waiter may hear the outcome before the worker has emitted its own event
                return "completed" in events.names("good")

            await wait_until(completed_emitted, message="rule: the worker emits completed for a finished job")
            unsubscribe()
            with pytest.raises(JobFailedError):
                await queue.enqueue_and_wait("bad", None, timeout=5)
            assert await queue.enqueue_and_wait("good2", None, timeout=5) == "ok", (
                "rule: a raising callback never kills the worker"
            )
        names = events.names()
        assert names[0] == "started" and names[-1] == "stopped", "rule: started comes first and stopped last"
        # enqueued is emitted by the producer, processing by the worker: their order is not fixed
        assert sorted(events.names("good")) == ["completed", "enqueued", "processing"], (
            "rule: a successful job emits enqueued, processing and completed"
        )
        assert events.names("good")[-1] == "completed", "rule: completed is the last event of a job"
        assert sorted(events.names("bad")) == ["enqueued", "failed", "processing"], (
            "rule: a failed job emits enqueued, processing and failed"
        )
        assert names.count("error") == 1, "rule: a raising callback is reported as error, once"


async def _gone(storage: Storage, job_id: str) -> bool:
    return await storage.get(job_id) is None
