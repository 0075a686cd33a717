"""Schedules on show: workers register their schedules, ``schedules_of`` reads them back with their next run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
import pytest
from jobqueue import Queue, ScheduleInfo, Storage, schedules_of
from jobqueue._schedule import build_schedule
from jobqueue._schedule_info import encode_worker_info
from jobqueue.storage import Monitoring, WorkerRecord, now_ms, rules

HOSTILE = "x[/b]\x1b[31m"
FAR = now_ms() + 3_600_000


async def wait_for(check: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll ``check`` (a coroutine function) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (found := await check()):
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
    return found


def scheduled_queue(storage: Storage, worker_id: str, *, nightly: bool) -> Queue[Any, None]:
    queue: Queue[Any, None] = Queue(storage, worker_id=worker_id, visibility_timeout=0.6)
    queue.execute(lambda job: None)
    queue.schedule(HOSTILE, every=0.2)
    if nightly:
        queue.schedule("nightly", cron="0 3 * * *", timezone="Europe/Paris")
    return queue


async def test_schedules_round_trip_through_the_worker_listing(storage: Storage) -> None:
    assert isinstance(storage, Monitoring)
    one = scheduled_queue(storage, "worker-1", nightly=True)
    two = scheduled_queue(storage, "worker-2", nightly=False)
    await one.start()
    await two.start()
    try:

        async def both_ticking() -> list[ScheduleInfo] | None:
            found = schedules_of(await storage.list_workers())
            hostile = [info for info in found if info.name == HOSTILE]
            ready = hostile and hostile[0].workers == ("worker-1", "worker-2") and hostile[0].last_tick
            return found if ready else None

        listed = await wait_for(both_ticking)
        assert [info.name for info in listed] == ["nightly", HOSTILE]
        nightly, hostile = listed
        assert (nightly.cron, nightly.every, nightly.timezone) == ("0 3 * * *", None, "Europe/Paris")
        assert nightly.workers == ("worker-1",) and nightly.last_tick is None  # no tick fell due yet
        assert nightly.spec == "cron 0 3 * * *"
        next_nightly = nightly.next_run().astimezone(ZoneInfo("Europe/Paris"))
        assert (next_nightly.hour, next_nightly.minute) == (3, 0)
        assert timedelta(0) < next_nightly - datetime.now(UTC) <= timedelta(days=1)
        assert (hostile.cron, hostile.every, hostile.timezone) == (None, timedelta(seconds=0.2), "UTC")
        assert hostile.spec == "every 0.2s"
        assert hostile.last_tick is not None and hostile.last_tick.timestamp() * 1000 % 200 == 0
        assert hostile.next_run(hostile.last_tick) == hostile.last_tick + timedelta(seconds=0.2)

        await one.stop()

        async def only_worker_2() -> bool:
            found = schedules_of(await storage.list_workers())
            return [(info.name, info.workers) for info in found] == [(HOSTILE, ("worker-2",))]

        await wait_for(only_worker_2)  # a stopped worker's schedules go with its registration
    finally:
        await one.stop()
        await two.stop()
    assert schedules_of(await storage.list_workers()) == []


# ------------------------------------------------------------ reading the info


def worker(worker_id: str, info: bytes, expires_at: int = FAR) -> WorkerRecord:
    return WorkerRecord(worker_id, now_ms(), expires_at, (), info)


def info_of(*entries: list[Any]) -> bytes:
    data: bytes = msgpack.packb({"schedules": list(entries)}, use_bin_type=True)
    return data


def test_workers_with_one_spec_merge_and_the_latest_tick_wins() -> None:
    spec = build_schedule("beat", cron=None, every=60, payload=None, timezone="UTC", catch_up=False)
    workers = [
        worker("b", encode_worker_info([spec], {"beat": 120_000})),
        worker("a", encode_worker_info([spec], {"beat": 180_000})),
        worker("c", encode_worker_info([spec], {})),
    ]
    (info,) = schedules_of(workers)
    assert info.workers == ("a", "b", "c")
    assert info.last_tick == datetime.fromtimestamp(180, UTC)
    assert info.next_run(datetime.fromtimestamp(180, UTC)) == datetime.fromtimestamp(240, UTC)


def test_one_name_with_two_specs_is_listed_once_per_spec() -> None:
    workers = [
        worker("a", info_of(["beat", None, 60_000, "UTC", None])),
        worker("b", info_of(["beat", "*/5 * * * *", None, "UTC", None])),
    ]
    assert [(info.spec, info.workers) for info in schedules_of(workers)] == [
        ("every 60s", ("a",)),
        ("cron */5 * * * *", ("b",)),
    ]


def test_lapsed_workers_run_nothing() -> None:
    workers = [worker("gone", info_of(["beat", None, 1000, "UTC", None]), expires_at=now_ms() - 1)]
    assert schedules_of(workers) == []


@pytest.mark.parametrize(
    "info",
    [
        b"\xc1 not msgpack",
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"schedules": "no"}),
        info_of(["beat", None, 1000, "UTC"]),  # a field short
        info_of(["beat", None, None, "UTC", None]),  # neither cron nor every
        info_of(["beat", "* * * * *", 1000, "UTC", None]),  # both
        info_of(["beat", None, -5, "UTC", None]),
        info_of(["beat", None, True, "UTC", None]),
        info_of(["beat", "61 * * * *", None, "UTC", None]),  # not a cron expression here
        info_of(["beat", None, 1000, "Mars/Olympus", None]),
        info_of(["beat", None, 1000, "../../etc/passwd", None]),
        info_of(["beat", None, 1000, "UTC", "yesterday"]),
        info_of([b"bytes name", None, 1000, "UTC", None]),
    ],
)
def test_info_that_does_not_decode_is_skipped(info: bytes) -> None:
    good = info_of(["ok", None, 1000, "UTC", None])
    assert [info.name for info in schedules_of([worker("bad", info), worker("good", good)])] == ["ok"]


def test_the_info_of_hundreds_of_long_names_fits_a_registration() -> None:
    specs = [
        build_schedule(
            f"{i:04d}" + "n" * 900, cron=None, every=60, payload=None, timezone="UTC", catch_up=False
        )
        for i in range(200)
    ]
    data = encode_worker_info(specs, {})
    assert len(data) <= rules.MAX_WORKER_INFO
    listed = schedules_of([worker("a", data)])
    assert 0 < len(listed) < 200 and listed[0].name == specs[0].name
