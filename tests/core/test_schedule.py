"""``queue.schedule``: periodic jobs, once per tick across workers, missed ticks skipped or caught up."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from datetime import datetime, timedelta
from typing import Any

import jobqueue._schedule as schedule_module
import pytest
from jobqueue import Job, JobQueueError, JobState, MemoryStorage, Queue, Storage, StorageError
from jobqueue._schedule import TICK_HORIZON_MS, Scheduler, build_schedule


def tick_of(job_id: str) -> int:
    return int(job_id.rsplit(":", 1)[1])


async def wait_until(predicate: Any, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def worker(storage: Storage, runs: collections.Counter[str], **options: Any) -> Queue[Any, None]:
    queue: Queue[Any, None] = Queue(storage, visibility_timeout=5)

    @queue.execute
    async def handle(job: Job[Any]) -> None:
        runs[job.id] += 1

    queue.schedule("beat", **options)
    return queue


# ------------------------------------------------------------------ validation


@pytest.fixture
def queue() -> Queue[Any, Any]:
    queue: Queue[Any, Any] = Queue(MemoryStorage())
    queue.execute(lambda job: None)
    return queue


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({}, ValueError, "exactly one of cron .* and every"),
        ({"cron": "* * * * *", "every": 5}, ValueError, "exactly one of cron .* and every"),
        ({"cron": "61 * * * *"}, ValueError, "cron '61 \\* \\* \\* \\*' is not a valid cron expression"),
        ({"cron": "* * * *"}, ValueError, "cron must have 5 fields"),
        ({"cron": "0 0 30 2 *"}, ValueError, "cron '0 0 30 2 \\*' is not a valid"),
        ({"cron": 5}, TypeError, "cron must be a str"),
        ({"every": 0}, ValueError, "every must be > 0"),
        ({"every": -1}, ValueError, "every must be > 0"),
        ({"every": "5"}, TypeError, "every must be seconds"),
        ({"every": 0.001}, ValueError, "every must be at least 0.01"),
        ({"every": 1, "timezone": "Mars/Olympus"}, ValueError, "timezone 'Mars/Olympus'"),
        ({"every": 1, "timezone": ""}, ValueError, "timezone must be"),
        ({"every": 1, "timezone": "../etc/passwd"}, ValueError, "timezone"),
        ({"every": 1, "catch_up": "yes"}, TypeError, "catch_up must be a bool"),
        ({"every": 1, "payload": {1, 2}}, TypeError, "payload"),
    ],
)
def test_bad_arguments_name_the_argument(
    queue: Queue[Any, Any], options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        queue.schedule("beat", **options)


@pytest.mark.parametrize("name", ["", None, "x" * 1100])
def test_bad_names_are_refused(queue: Queue[Any, Any], name: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=r"^name"):
        queue.schedule(name, every=1)


def test_a_name_is_used_once(queue: Queue[Any, Any]) -> None:
    queue.schedule("beat", every=1)
    with pytest.raises(ValueError, match="name: a schedule named 'beat' already exists"):
        queue.schedule("beat", cron="* * * * *")


def test_needs_a_handler() -> None:
    with pytest.raises(JobQueueError, match="set a handler"):
        Queue(MemoryStorage()).schedule("beat", every=1)


async def test_refused_once_started(queue: Queue[Any, Any]) -> None:
    async with queue:
        with pytest.raises(JobQueueError, match="before start"):
            queue.schedule("beat", every=1)


def test_every_accepts_a_timedelta_and_cron_six_fields(queue: Queue[Any, Any]) -> None:
    queue.schedule("a", every=timedelta(minutes=5))
    queue.schedule("b", cron="*/10 * * * * *")
    queue.schedule("c", cron="0 3 * * 1-5", timezone="Europe/Paris")


# ------------------------------------------------------------------ tick arithmetic


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_cron_ticks_follow_the_timezone() -> None:
    spec = build_schedule("n", cron="0 3 * * *", every=None, payload=None, timezone="Europe/Paris",
                          catch_up=False)  # fmt: skip
    # 03:00 in Paris is 02:00 UTC in winter and 01:00 UTC in summer
    assert spec.next_after(ms("2026-01-10T12:00:00+00:00")) == ms("2026-01-11T02:00:00+00:00")
    assert spec.next_after(ms("2026-07-10T12:00:00+00:00")) == ms("2026-07-11T01:00:00+00:00")
    assert spec.latest_at_or_before(ms("2026-01-11T02:00:00+00:00")) == ms("2026-01-11T02:00:00+00:00")
    assert spec.latest_at_or_before(ms("2026-01-11T01:59:59+00:00")) == ms("2026-01-10T02:00:00+00:00")
    assert spec.period_ms == 24 * 3600 * 1000
    assert spec.job_id(ms("2026-01-11T02:00:00+00:00")) == f"schedule:n:{ms('2026-01-11T02:00:00+00:00')}"


def test_every_ticks_are_multiples_since_the_epoch() -> None:
    spec = build_schedule("n", cron=None, every=0.5, payload=None, timezone="UTC", catch_up=False)
    assert spec.next_after(1_000) == 1_500
    assert spec.next_after(1_499) == 1_500
    assert spec.latest_at_or_before(1_499) == 1_000
    assert spec.ticks_between(1_000, 3_000, limit=1000) == [1_500, 2_000, 2_500, 3_000]
    assert spec.ticks_between(1_000, 3_000, limit=2) == [2_500, 3_000]


def test_weekday_cron_period_is_its_longest_gap() -> None:
    spec = build_schedule("n", cron="0 9 * * 1-5", every=None, payload=None, timezone="UTC",
                          catch_up=False)  # fmt: skip
    assert spec.period_ms == 3 * 24 * 3600 * 1000  # Friday to Monday
    assert spec.result_ttl_ms >= 2 * spec.period_ms + TICK_HORIZON_MS


# ------------------------------------------------------------------ running


async def test_each_tick_runs_once_across_workers(storage: Storage) -> None:
    """Three workers share a schedule; one stops and a fourth joins: every tick ran exactly once."""
    runs: collections.Counter[str] = collections.Counter()
    period = 0.25
    queues = [worker(storage, runs, every=period) for _ in range(3)]
    started = time.time()
    for queue in queues:
        await queue.start()
    try:
        await wait_until(lambda: len(runs) >= 6)
        await queues[0].stop()
        late = worker(storage, runs, every=period)
        await late.start()
        queues[0] = late
        await wait_until(lambda: len(runs) >= 14)
    finally:
        for queue in queues:
            await queue.stop()
    stopped = time.time()
    assert all(count == 1 for count in runs.values()), runs
    ticks = sorted(tick_of(job_id) for job_id in runs)
    step = int(period * 1000)
    assert ticks == list(range(ticks[0], ticks[-1] + step, step)), "a tick was skipped while workers ran"
    assert started * 1000 < ticks[0] <= started * 1000 + step + 10_000  # generous: a loaded machine
    assert ticks[-1] <= stopped * 1000
    record = await storage.get(f"schedule:beat:{ticks[0]}")
    assert record is not None and record.state is JobState.COMPLETED
    assert record.expires_at is not None and record.expires_at - record.updated_at > 2 * step


async def test_missed_ticks_are_skipped_unless_catch_up(storage: Storage) -> None:
    runs: collections.Counter[str] = collections.Counter()
    queue: Queue[Any, None] = Queue(storage)

    @queue.execute
    async def handle(job: Job[Any]) -> None:
        runs[job.id] += 1

    hour = 3600
    queue.schedule("skips", every=hour)
    queue.schedule("catches-up", every=hour, catch_up=True, payload={"x": 1})
    queue.schedule("fast", every=0.1)
    latest = int(time.time()) // hour * hour * 1000

    def fast() -> int:
        return sum(job_id.startswith("schedule:fast:") for job_id in runs)

    async with queue:
        await wait_until(lambda: f"schedule:catches-up:{latest}" in runs)
        # every loop started together: two ticks of "fast" later, "skips" had its chance and took none
        await wait_until(lambda: fast() >= 2)
        assert await storage.get(f"schedule:skips:{latest}") is None
        assert not any(job_id.startswith("schedule:skips:") for job_id in runs)
    # a restart within the hour does not run the caught-up tick again: its dedup entry is alive
    again: Queue[Any, None] = Queue(storage)
    again.execute(handle)
    again.schedule("catches-up", every=hour, catch_up=True, payload={"x": 1})
    again.schedule("fast", every=0.1)
    async with again:
        before = fast()
        await wait_until(lambda: fast() >= before + 2)
    assert runs[f"schedule:catches-up:{latest}"] == 1


async def test_a_cron_schedule_runs_at_whole_seconds(storage: Storage) -> None:
    runs: collections.Counter[str] = collections.Counter()
    queue = worker(storage, runs, cron="* * * * * *", timezone="Asia/Kolkata", payload=[1, 2])
    async with queue:
        await wait_until(lambda: len(runs) >= 2)
    ticks = sorted(tick_of(job_id) for job_id in runs)
    assert all(tick % 1000 == 0 for tick in ticks)
    assert ticks[1] - ticks[0] == 1000


async def test_the_payload_reaches_the_handler(storage: Storage) -> None:
    payloads: list[Any] = []
    queue: Queue[Any, None] = Queue(storage)

    @queue.execute
    async def handle(job: Job[Any]) -> None:
        payloads.append(job.payload)

    queue.schedule("beat", every=0.1, payload={"report": "daily"})
    async with queue:
        await wait_until(lambda: payloads)
    assert payloads[0] == {"report": "daily"}


async def test_stop_ends_the_scheduler_task(storage: Storage) -> None:
    runs: collections.Counter[str] = collections.Counter()
    queue = worker(storage, runs, every=0.1)
    async with queue:
        assert any(task.get_name() == "jobqueue-scheduler" for task in asyncio.all_tasks())
        await wait_until(lambda: runs)
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert not {name for name in names if name.startswith("jobqueue-schedule")}, names


# ------------------------------------------------------------------ the scheduler task alone


async def run_scheduler(spec_every: float, submit: Any, until: Any, logger: logging.Logger) -> None:
    spec = build_schedule("s", cron=None, every=spec_every, payload=None, timezone="UTC", catch_up=False)
    task = asyncio.create_task(Scheduler([spec], submit, logger).run())
    try:
        await wait_until(until)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_ticks_due_during_a_storage_outage_are_enqueued_after_it() -> None:
    calls: list[list[int]] = []
    failures = 3

    async def submit(_spec: Any, ticks: list[int]) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise StorageError("connection refused")
        calls.append(ticks)

    await run_scheduler(0.1, submit, lambda: sum(map(len, calls)) >= 12, logging.getLogger("test"))
    ticks = [tick for batch in calls for tick in batch]
    assert ticks == list(range(ticks[0], ticks[0] + 100 * len(ticks), 100)), "a tick was lost in the outage"
    assert any(len(batch) > 1 for batch in calls), "the outage should have made ticks pile up"


async def test_ticks_too_late_are_skipped_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(schedule_module, "TICK_HORIZON_MS", 0)  # late means one period late here
    calls: list[list[int]] = []
    outage_until = time.time() + 0.6

    async def submit(_spec: Any, ticks: list[int]) -> None:
        if time.time() < outage_until:
            raise StorageError("connection refused")
        calls.append(ticks)

    await run_scheduler(0.1, submit, lambda: len(calls) >= 3, logging.getLogger("test-late"))
    assert "skipped the ticks due between" in caplog.text
    first = calls[0]
    assert first[0] >= outage_until * 1000 - 250, "ticks older than a period were enqueued"
