"""Concurrent ``enqueue`` calls share batch ``_enqueue`` calls; each caller keeps its own answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from jobqueue import EnqueueResult, Job, JobState, MemoryStorage, Queue, StorageError
from jobqueue.storage import EnqueueOutcome, NewJob

pytestmark = pytest.mark.memory


class GatedStorage(MemoryStorage):
    """MemoryStorage whose ``_enqueue`` records each batch and may be held open or fail.

    It also records how many calls were in flight at most, and every id sent while a call
    holding it was still in flight.
    """

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.failing: set[str] = set()  # a batch holding one of these ids fails as a whole
        self.in_flight: list[list[str]] = []
        self.most_in_flight = 0
        self.overlapping: list[str] = []

    async def _enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        ids = [job.id for job in jobs]
        self.batches.append(ids)
        self.overlapping += [i for i in ids if any(i in call for call in self.in_flight)]
        self.in_flight.append(ids)
        self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        try:
            await self.gate.wait()
            if self.failing & set(ids):
                raise StorageError("the batch was refused")
            return await super()._enqueue(jobs)
        finally:
            self.in_flight.remove(ids)


async def wait_until(check: Callable[[], bool], *, message: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() >= deadline:
            pytest.fail(f"{message} (still not true after {timeout} s)")
        await asyncio.sleep(0.001)


@pytest.fixture
async def storage() -> AsyncIterator[GatedStorage]:
    async with GatedStorage() as storage:
        yield storage


async def _hold_first_call(storage: GatedStorage, queue: Queue[int, int]) -> asyncio.Task[EnqueueResult[int]]:
    """Start an enqueue of "first" and keep it in flight until the gate opens."""
    storage.gate.clear()
    first = asyncio.create_task(queue.enqueue("first", 0))
    await wait_until(lambda: storage.batches == [["first"]], message="the first call is in flight")
    return first


async def test_sequential_calls_go_out_one_by_one(storage: GatedStorage) -> None:
    queue: Queue[int, int] = Queue(storage)
    for i in range(3):
        assert (await queue.enqueue(f"job-{i}", i)).status == "queued"
    assert storage.batches == [["job-0"], ["job-1"], ["job-2"]]


def _sent(storage: GatedStorage) -> list[str]:
    return [job_id for batch in storage.batches for job_id in batch]


async def test_calls_made_while_one_is_in_flight_go_out_in_batches_two_calls_at_most(
    storage: GatedStorage,
) -> None:
    queue: Queue[int, int] = Queue(storage)
    first = await _hold_first_call(storage, queue)
    rest = [asyncio.create_task(queue.enqueue(f"job-{i}", i)) for i in range(20)]
    # the second call takes half of the 21 jobs outstanding; the rest waits for a free call
    await wait_until(lambda: len(storage.batches) == 2, message="a second call goes out")
    assert storage.batches == [["first"], [f"job-{i}" for i in range(11)]]
    storage.gate.set()
    results = await asyncio.gather(*rest)
    assert (await first).status == "queued"
    assert [(r.job_id, r.status) for r in results] == [(f"job-{i}", "queued") for i in range(20)]
    assert _sent(storage) == ["first"] + [f"job-{i}" for i in range(20)], "in arrival order"
    assert storage.most_in_flight == 2


async def test_dedup_within_a_batch_answers_as_sequential_calls(storage: GatedStorage) -> None:
    queue: Queue[int, int] = Queue(storage)
    first = await _hold_first_call(storage, queue)
    calls = [queue.enqueue(job_id, 1) for job_id in ("a", "first", "b", "a")]
    pending = asyncio.gather(*calls)
    await asyncio.sleep(0)
    storage.gate.set()
    results = await pending
    await first
    assert [(r.status, r.existing_state) for r in results] == [
        ("queued", None),
        ("duplicate", JobState.QUEUED),
        ("queued", None),
        ("duplicate", JobState.QUEUED),
    ]
    assert _sent(storage) == ["first", "a", "first", "b", "a"], "in arrival order"
    assert storage.overlapping == [], "an id goes out again only once its call answered"


async def test_a_job_held_back_for_its_id_waits_without_spinning(storage: GatedStorage) -> None:
    queue: Queue[int, int] = Queue(storage)
    first = await _hold_first_call(storage, queue)
    again = asyncio.create_task(queue.enqueue("first", 1))
    # white-box: the call is handed over, held back while its id is in flight (a call slot is free)
    await wait_until(lambda: len(queue._coalescer._waiting) == 1, message="the second call is handed over")
    cpu = time.process_time()
    await asyncio.sleep(0.3)
    assert time.process_time() - cpu < 0.15, "the held-back job is not retried in a loop"
    assert storage.batches == [["first"]], "an id goes out again only once its call answered"
    storage.gate.set()
    assert (await first).status == "queued"
    assert (await again).status == "duplicate"
    assert storage.batches == [["first"], ["first"]]


async def test_a_bad_call_fails_alone_before_anything_is_written(storage: GatedStorage) -> None:
    queue: Queue[int, int] = Queue(storage)
    first = await _hold_first_call(storage, queue)
    good = asyncio.create_task(queue.enqueue("good", 1))
    with pytest.raises(ValueError, match="priority"):
        await queue.enqueue("bad", 1, priority=10**6)
    storage.gate.set()
    assert (await good).status == "queued"
    await first
    assert storage.batches == [["first"], ["good"]]


async def test_a_storage_error_reaches_every_caller_of_that_batch_only(storage: GatedStorage) -> None:
    queue: Queue[int, int] = Queue(storage)
    first = await _hold_first_call(storage, queue)
    storage.failing = {"doomed"}
    ids = ("w", "x", "doomed", "y", "z")
    calls = [asyncio.create_task(queue.enqueue(job_id, 1)) for job_id in ids]
    await asyncio.sleep(0)
    storage.gate.set()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert (await first).status == "queued"
    [refused] = [batch for batch in storage.batches if "doomed" in batch]
    assert len(refused) > 1, f"the test needs a refused batch of several jobs: {storage.batches}"
    for job_id, outcome in zip(ids, outcomes, strict=True):
        if job_id in refused:
            assert isinstance(outcome, StorageError), job_id
            assert await storage.get(job_id) is None, "the refused batch wrote nothing"
        else:
            assert isinstance(outcome, EnqueueResult) and outcome.status == "queued", job_id
    assert (await queue.enqueue(refused[0], 1)).status == "queued", "the next call goes out again"


async def test_a_cancelled_caller_does_not_cancel_its_batch(storage: GatedStorage) -> None:
    queue: Queue[int, int] = Queue(storage)
    first = await _hold_first_call(storage, queue)
    cancelled = asyncio.create_task(queue.enqueue("cancelled", 1))
    kept = asyncio.create_task(queue.enqueue("kept", 1))
    await asyncio.sleep(0)
    cancelled.cancel()
    storage.gate.set()
    assert (await kept).status == "queued"
    await first
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert storage.batches == [["first"], ["cancelled", "kept"]]


async def test_enqueue_and_wait_calls_share_batches(storage: GatedStorage) -> None:
    queue: Queue[int, int] = Queue(storage, concurrency=10)

    @queue.execute
    async def double(job: Job[int]) -> int:
        return 2 * job.payload

    async with queue:
        first = await _hold_first_call(storage, queue)
        waits = [asyncio.create_task(queue.enqueue_and_wait(f"w-{i}", i, timeout=30)) for i in range(5)]
        # white-box: nothing outside tells that the waiters have subscribed and reached the enqueue step
        await wait_until(
            lambda: len(queue._coalescer._waiting) + len(_sent(storage)) == 6, message="the waiters enqueue"
        )
        storage.gate.set()
        assert await asyncio.gather(*waits) == [0, 2, 4, 6, 8]
        await first
    assert _sent(storage) == ["first"] + [f"w-{i}" for i in range(5)]
    assert len(storage.batches) < 6, f"shared: {storage.batches}"


async def test_stop_lets_a_queued_batch_go_out_first(storage: GatedStorage) -> None:
    queue: Queue[int, int] = Queue(storage)
    await queue.start()
    first = await _hold_first_call(storage, queue)
    rest = [asyncio.create_task(queue.enqueue(f"job-{i}", i)) for i in range(5)]
    await asyncio.sleep(0)
    stopping = asyncio.create_task(queue.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done(), "stop returned while enqueues it had accepted were unsent"
    storage.gate.set()
    await stopping
    assert (await first).status == "queued"
    assert [(await task).status for task in rest] == ["queued"] * 5
    assert _sent(storage) == ["first"] + [f"job-{i}" for i in range(5)]
