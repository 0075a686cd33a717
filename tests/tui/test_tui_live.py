"""Live features fed by storage events: progress, processing time percentiles, new workers."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from jobqueue import Job, MsgpackSerde, Queue, Storage
from jobqueue.storage import EventKind
from jobqueue_tui import DashboardApp
from jobqueue_tui._screens.detail import DetailScreen
from jobqueue_tui._widgets.jobs import JobsTable
from jobqueue_tui._widgets.schedules import SchedulesPanel
from jobqueue_tui._widgets.throughput import ThroughputPanel
from jobqueue_tui._widgets.workers import WorkersPanel

from .tui_helpers import screen_text, shows, table_ids, wait_until

SIZE = (100, 30)


def progress_cell(app: DashboardApp, job_id: str) -> str:
    table = app.screen.query_one(JobsTable)
    return table.get_cell(job_id, "progress").plain


async def test_progress_is_shown_live_in_the_table_and_the_detail(storage: Storage) -> None:
    # A long fallback interval: only the events can move the progress in time.
    app = DashboardApp(storage, refresh_interval=3600)
    queue: Queue[dict[str, Any], str] = Queue(storage, block_timeout=0.2)
    steps = [asyncio.Event() for _ in range(3)]
    reported = [asyncio.Event() for _ in range(3)]

    @queue.execute
    async def handle(job: Job[dict[str, Any]]) -> str:
        await job.report_progress({"done": 1, "total": 3})
        reported[0].set()
        await steps[0].wait()
        await job.report_progress("[link=https://evil.example]click[/link]\x1b[31m")
        reported[1].set()
        await steps[1].wait()
        await job.report_progress({"stage": "upload", "pct": 40})
        reported[2].set()
        await steps[2].wait()
        return "ok"

    async with app.run_test(size=SIZE) as pilot, queue:
        await wait_until(pilot, lambda: app.live, "the event stream subscribed")
        await queue.enqueue("long-job", {"x": 1})
        await wait_until(pilot, lambda: "long-job" in table_ids(app), "the job listed")
        await wait_until(pilot, lambda: progress_cell(app, "long-job") == "1/3", "progress 1/3 in the table")

        steps[0].set()
        hostile = '"[link=https://evil.example]click[/link]\\u001b[31m"'
        await wait_until(
            pilot, lambda: progress_cell(app, "long-job") == hostile, "the hostile progress, escaped"
        )
        assert '"[link=http…' in screen_text(app)  # shown as written (cut to the column), not obeyed

        table = app.screen.query_one(JobsTable)
        table.move_cursor(row=table.get_row_index("long-job"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail screen")
        await wait_until(pilot, lambda: shows(app, "progress", hostile), "the progress in the detail")
        steps[1].set()
        compact = '{"pct":40,"stage":"upload"}'
        await wait_until(pilot, lambda: shows(app, "progress", compact), "the new progress in the detail")

        steps[2].set()
        assert await queue.wait("long-job", timeout=30) == "ok"
        await wait_until(pilot, lambda: shows(app, "state", "completed"), "the job completed")
        assert shows(app, "progress", compact)  # the last value stays with the record


async def test_progress_encoded_by_a_msgpack_result_serde(storage: Storage) -> None:
    app = DashboardApp(storage, refresh_interval=3600)
    queue: Queue[dict[str, Any], str] = Queue(storage, block_timeout=0.2, result_serde=MsgpackSerde())
    finish = asyncio.Event()

    @queue.execute
    async def handle(job: Job[dict[str, Any]]) -> str:
        await job.report_progress({"done": 7, "total": 9})
        await finish.wait()
        return "ok"

    async with app.run_test(size=SIZE) as pilot, queue:
        await wait_until(pilot, lambda: app.live, "the event stream subscribed")
        await queue.enqueue("packed", {"x": 1})
        await wait_until(
            pilot,
            lambda: "packed" in table_ids(app) and progress_cell(app, "packed") == "7/9",
            "msgpack progress decoded",
        )
        finish.set()
        assert await queue.wait("packed", timeout=30) == "ok"


async def test_processing_time_percentiles_next_to_the_throughput(storage: Storage) -> None:
    app = DashboardApp(storage, refresh_interval=3600)
    queue: Queue[dict[str, Any], str] = Queue(storage, block_timeout=0.2)

    @queue.execute
    async def handle(job: Job[dict[str, Any]]) -> str:
        await asyncio.sleep(job.payload["sleep"])
        return "ok"

    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one(ThroughputPanel)
        await wait_until(pilot, lambda: app.live, "the event stream subscribed")
        await wait_until(pilot, lambda: panel.border_subtitle == "—", "no percentiles without data")
        async with queue:
            for i in range(4):
                await queue.enqueue(f"timed-{i}", {"sleep": 0.05})
            for i in range(4):
                assert await queue.wait(f"timed-{i}", timeout=30) == "ok"
            await wait_until(pilot, lambda: app.throughput.totals()[0] == 4, "4 completions received")
            values = app.latency.percentiles(app.clock())
            assert values is not None
            p50, p95 = values
            assert 50 <= p50 <= p95 < 30_000  # each job slept 50 ms between its two events
            expected = f"p50 {p50} ms · p95 {p95} ms"
            await wait_until(pilot, lambda: panel.border_subtitle == expected, "the percentiles shown")
            assert expected in screen_text(app)


async def test_a_worker_started_after_the_app_appears_without_the_fallback(storage: Storage) -> None:
    app = DashboardApp(storage, refresh_interval=3600)  # the fallback refresh never fires in this test
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one(WorkersPanel)
        await wait_until(pilot, lambda: app.live, "the event stream subscribed")
        await pilot.pause(0.3)  # let the first load list no worker
        assert panel.records == []

        queue: Queue[dict[str, Any], str] = Queue(storage, block_timeout=0.2, worker_id="late-worker")
        queue.execute(lambda job: "ok")
        async with queue:
            await queue.enqueue("first", {"x": 1})

            def named() -> bool:
                return any(event.worker_id == "late-worker" for _, event in app.event_log)

            await wait_until(pilot, named, "an event naming the worker")
            seen = time.monotonic()
            await wait_until(
                pilot, lambda: [w.id for w in panel.records] == ["late-worker"], "the worker listed", 10
            )
            # Generous for a loaded machine, yet well under the 5 s default fallback.
            assert time.monotonic() - seen < 3.0
            kinds = {event.kind for _, event in app.event_log}
            assert EventKind.PROCESSING in kinds


async def test_the_schedules_panel_follows_the_workers_that_run_schedules(storage: Storage) -> None:
    app = DashboardApp(storage, refresh_interval=3600)  # events alone bring the schedules in
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one(SchedulesPanel)
        await wait_until(pilot, lambda: app.live, "the event stream subscribed")
        await pilot.pause(0.3)  # let the first load list no schedule
        assert not panel.display and panel.schedules == []

        queue: Queue[Any, None] = Queue(storage, block_timeout=0.2, worker_id="w-1", visibility_timeout=1)
        queue.execute(lambda job: None)
        queue.schedule("beat[/b]\x1b[2J", every=0.5)
        async with queue:
            await wait_until(pilot, lambda: panel.display and panel.schedules != [], "the panel shown", 10)
            (info,) = panel.schedules
            assert (info.name, info.spec, info.workers) == ("beat[/b]\x1b[2J", "every 0.5s", ("w-1",))
            await wait_until(pilot, lambda: panel.schedules[0].last_tick is not None, "a tick listed", 10)
            text = screen_text(app)
            assert "beat[/b]\\x1b[2J" in text and "every 0.5s" in text and "1 w-1" in text
            assert re.search(r"in [01]s · \d\d:\d\d:\d\d", text), text
        # worker_left: the dashboard lists the workers again, and the schedule goes with its worker
        await wait_until(pilot, lambda: not panel.display, "the panel hidden with the worker gone", 10)


async def test_workers_appear_and_disappear_live_on_the_worker_events(storage: Storage) -> None:
    app = DashboardApp(storage, refresh_interval=3600)  # the fallback refresh never fires in this test
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one(WorkersPanel)
        await wait_until(pilot, lambda: app.live, "the event stream subscribed")
        await pilot.pause(0.3)  # let the first load list no worker
        assert panel.records == []

        def heard(kind: EventKind) -> bool:
            return any(e.kind is kind and e.worker_id == "idle-worker" for _, e in app.event_log)

        # No job runs: only the worker's own events can make the panel list it again.
        queue: Queue[dict[str, Any], str] = Queue(storage, block_timeout=0.2, worker_id="idle-worker")
        queue.execute(lambda job: "ok")
        async with queue:
            await wait_until(pilot, lambda: heard(EventKind.WORKER_JOINED), "worker_joined")
            joined = time.monotonic()
            await wait_until(
                pilot, lambda: [w.id for w in panel.records] == ["idle-worker"], "the worker listed"
            )
            # Generous for a loaded machine, yet well under the 5 s default fallback.
            assert time.monotonic() - joined < 3.0
            assert "idle-worker" in screen_text(app)
        await wait_until(pilot, lambda: heard(EventKind.WORKER_LEFT), "worker_left")
        left = time.monotonic()
        await wait_until(pilot, lambda: panel.records == [], "the stopped worker gone from the panel")
        assert time.monotonic() - left < 3.0
        assert all(e.kind not in (EventKind.PROCESSING, EventKind.ENQUEUED) for _, e in app.event_log)
