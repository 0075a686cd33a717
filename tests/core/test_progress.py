"""``job.report_progress``: stored on the job, read as ``JobStatus.progress``, emitted as ``progress``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from jobqueue import Job, JobState, MsgpackSerde, Queue, Storage
from jobqueue.storage import Channel, EventKind, rules

INLINE_RESULT_LIMIT = rules.INLINE_RESULT_LIMIT


async def wait_until(predicate: Any, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_progress_is_stored_emitted_and_readable(storage: Storage) -> None:
    queue: Queue[dict[str, int], str] = Queue(storage)
    reported = asyncio.Event()
    finish = asyncio.Event()
    stored: list[bool] = []

    @queue.execute
    async def handle(job: Job[dict[str, int]]) -> str:
        stored.append(await job.report_progress({"done": 1, "total": 4}))
        stored.append(await job.report_progress({"done": 3, "total": 4}))
        reported.set()
        await finish.wait()
        return "ok"

    events: list[tuple[str, Any]] = []
    queue.on("progress", lambda job_id, value: events.append((job_id, value)))
    async with queue, storage.subscribe(Channel.EVENTS) as feed:
        await queue.enqueue("job-1", {"n": 1})
        await asyncio.wait_for(reported.wait(), 30)
        status = await queue.get_status("job-1")
        assert status is not None and status.state is JobState.PROCESSING
        assert status.progress == {"done": 3, "total": 4}
        assert stored == [True, True]
        assert events == [("job-1", {"done": 1, "total": 4}), ("job-1", {"done": 3, "total": 4})]
        seen = []
        async for event in feed:
            if event.kind is EventKind.PROGRESS:
                seen.append((event.job_id, event.data))
            if len(seen) == 2:
                break
        assert seen == [("job-1", b'{"done":1,"total":4}'), ("job-1", b'{"done":3,"total":4}')]
        finish.set()
        assert await queue.wait("job-1", timeout=30) == "ok"
        status = await queue.get_status("job-1")
        assert status is not None and status.state is JobState.COMPLETED
        assert status.progress == {"done": 3, "total": 4}  # the last value stays with the record


async def test_progress_uses_the_result_serde(storage: Storage) -> None:
    queue: Queue[None, None] = Queue(storage, result_serde=MsgpackSerde())

    @queue.execute
    async def handle(job: Job[None]) -> None:
        await job.report_progress(b"\x00raw bytes")

    async with queue:
        await queue.enqueue_and_wait("job-1", None, timeout=30)
        record = await storage.get("job-1")
        assert record is not None and record.progress == MsgpackSerde[bytes]().serialize(b"\x00raw bytes")
        status = await queue.get_status("job-1")
        assert status is not None and status.progress == b"\x00raw bytes"


async def test_no_progress_reads_as_none(storage: Storage) -> None:
    queue: Queue[int, None] = Queue(storage)
    async with queue:
        await queue.enqueue("job-1", 1)
        status = await queue.get_status("job-1")
        assert status is not None and status.progress is None


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ({1, 2}, TypeError, "report_progress: value"),
        (float("nan"), TypeError, "report_progress: value"),
        ("x" * INLINE_RESULT_LIMIT, ValueError, "report_progress: value encodes to 8194 bytes"),
    ],
)
async def test_bad_progress_values_are_refused(
    storage: Storage, value: object, error: type[Exception], match: str
) -> None:
    queue: Queue[None, str] = Queue(storage, max_attempts=1)
    refused: list[Exception] = []

    @queue.execute
    async def handle(job: Job[None]) -> str:
        try:
            await job.report_progress(value)
        except Exception as exc:
            refused.append(exc)
        return "done"

    async with queue:
        assert await queue.enqueue_and_wait("job-1", None, timeout=30) == "done"
        assert len(refused) == 1 and isinstance(refused[0], error), refused
        assert match in str(refused[0])
        record = await storage.get("job-1")
        assert record is not None and record.progress is None  # nothing was written


async def test_largest_progress_value_is_accepted(storage: Storage) -> None:
    queue: Queue[None, None] = Queue(storage)
    value = "x" * (INLINE_RESULT_LIMIT - 2)  # plus two quotes: exactly the limit

    @queue.execute
    async def handle(job: Job[None]) -> None:
        assert await job.report_progress(value)

    async with queue:
        await queue.enqueue_and_wait("job-1", None, timeout=30)
        status = await queue.get_status("job-1")
        assert status is not None and status.progress == value


async def test_progress_of_a_lost_job_is_not_stored(storage: Storage) -> None:
    """A worker that no longer owns the job is told so (False) and nothing is stored or emitted."""
    queue: Queue[None, None] = Queue(storage, visibility_timeout=30)
    outcome: list[bool] = []
    taken = asyncio.Event()
    go_on = asyncio.Event()

    @queue.execute
    async def handle(job: Job[None]) -> None:
        if taken.is_set():  # the job runs again after its release; only the first run matters
            return
        taken.set()
        await go_on.wait()
        outcome.append(await job.report_progress("late"))

    events: list[object] = []
    queue.on("progress", lambda *args: events.append(args))
    async with queue:
        await queue.enqueue("job-1", None)
        await asyncio.wait_for(taken.wait(), 30)
        # a reaper's recovery, in short: the job goes back to the queue, this worker no longer owns it
        assert await storage.release("job-1", queue.worker_id)
        go_on.set()
        await wait_until(lambda: outcome)
    assert outcome == [False]
    assert events == []
