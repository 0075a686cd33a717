"""The main screen against real storages: counts, throughput, workers, filters, paging, sorting."""

from __future__ import annotations

from typing import Any

from jobqueue import JobState, Queue, Storage
from jobqueue_tui import DashboardApp
from jobqueue_tui._screens.detail import DetailScreen
from jobqueue_tui._screens.main import MainScreen
from jobqueue_tui._widgets.counts import CountsBar, StateCount
from jobqueue_tui._widgets.jobs import JobsTable, SortOrder
from jobqueue_tui._widgets.workers import WorkersPanel
from textual.widgets import Input

from .tui_helpers import (
    WORKER_START_S,
    claim,
    complete,
    fail,
    put,
    running_worker,
    screen_text,
    table_ids,
    tick,
    wait_until,
)

SIZE = (100, 30)


def count_of(app: DashboardApp, state: JobState | None) -> int:
    name = state.value if state is not None else "all"
    return app.screen.query_one(f"#count-{name}", StateCount).count


async def test_counts_and_throughput_follow_a_real_worker(storage: Storage, storage_url: str) -> None:
    # A long fallback interval: only storage events can make the counts move in time.
    app = DashboardApp(storage, refresh_interval=3600)
    producer: Queue[dict[str, Any], dict[str, Any]] = Queue(storage, max_attempts=1)
    async with app.run_test(size=SIZE) as pilot, producer:
        await wait_until(pilot, lambda: app.live, "the event stream subscribed")
        for i in range(5):
            await producer.enqueue(f"job-{i}", {"x": i, "fail": i == 4})
        await wait_until(pilot, lambda: count_of(app, JobState.QUEUED) == 5, "5 queued jobs counted")
        assert count_of(app, None) == 5
        assert set(table_ids(app)) == {f"job-{i}" for i in range(5)}

        async with running_worker(storage, storage_url):
            await wait_until(
                pilot,
                lambda: count_of(app, JobState.COMPLETED) == 4,
                "4 completed jobs counted",
                WORKER_START_S,
            )
            await wait_until(pilot, lambda: count_of(app, JobState.FAILED) == 1, "1 failed job counted")
            panel = app.screen.query_one(WorkersPanel)
            app.data_changed(None)  # registrations publish no event
            await wait_until(pilot, lambda: len(panel.records) == 1, "the worker listed")
        assert count_of(app, JobState.QUEUED) == 0
        assert app.throughput.totals() == (4, 1)
        completed, failed = app.throughput.series(app.clock())
        assert sum(completed) == 4
        assert sum(failed) == 1


async def test_filter_by_state_with_clicks_and_keys(storage: Storage) -> None:
    await put(storage, "a-done", "b-failed", "c-queued", "d-queued")
    await complete(storage, "a-done")
    await fail(storage, "b-failed")
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 4, "4 jobs listed")
        await pilot.click("#count-failed")
        await wait_until(pilot, lambda: table_ids(app) == ["b-failed"], "only the failed job")
        assert app.screen.query_one("#count-failed").has_class("-active")
        await pilot.click("#count-failed")  # clicking the active state again shows every state
        await wait_until(pilot, lambda: len(table_ids(app)) == 4, "all jobs again")

        await pilot.press("f")  # all -> queued
        await wait_until(pilot, lambda: table_ids(app) == ["d-queued", "c-queued"], "only queued jobs")
        assert app.screen.query_one(CountsBar).query_one("#count-queued").has_class("-active")
        await pilot.press("f", "f")  # -> processing -> failing: nothing
        await wait_until(pilot, lambda: table_ids(app) == [], "no failing job")
        await pilot.press("f")
        await wait_until(pilot, lambda: table_ids(app) == ["a-done"], "only the completed job")


async def test_search_by_id_prefix(storage: Storage) -> None:
    await put(storage, "user:1", "user:2", "order:1", "usa")
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 4, "4 jobs listed")
        await pilot.press("slash")
        assert app.focused is app.screen.query_one("#search", Input)
        await pilot.press(*"user:")
        await wait_until(pilot, lambda: table_ids(app) == ["user:2", "user:1"], "the user: jobs")
        await pilot.press("enter")  # back to the table, search kept
        assert isinstance(app.focused, JobsTable)
        await pilot.press("slash", "u", "s")  # focusing selects the old text: typing replaces it
        await wait_until(pilot, lambda: set(table_ids(app)) == {"user:1", "user:2", "usa"}, "the us jobs")
        await pilot.press("escape")
        assert isinstance(app.focused, JobsTable)


async def test_pages_never_hold_more_than_a_page(storage: Storage) -> None:
    ids = [f"job-{i:02d}" for i in range(12)]
    await put(storage, *ids)
    app = DashboardApp(storage, page_size=5)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, MainScreen)
        newest_first = ids[::-1]
        await wait_until(pilot, lambda: table_ids(app) == newest_first[:5], "page 1")
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: table_ids(app) == newest_first[5:10], "page 2")
        assert screen.page_number == 2
        await pilot.press("right_square_bracket")
        await wait_until(pilot, lambda: table_ids(app) == newest_first[10:], "page 3")
        await pilot.press("right_square_bracket")  # there is no page 4
        await pilot.pause()
        assert screen.page_number == 3
        await wait_until(pilot, lambda: "page 3" in screen_text(app), "page 3 in the pager")
        await pilot.press("left_square_bracket", "left_square_bracket")
        await wait_until(pilot, lambda: table_ids(app) == newest_first[:5], "back to page 1")
        assert screen.page_number == 1


async def test_sort_the_page_by_time(storage: Storage) -> None:
    for job_id in ("first", "second", "third"):
        await put(storage, job_id)
        await tick()
    await complete(storage, "first")  # updated after the others were created
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: table_ids(app) == ["third", "second", "first"], "newest first")
        table = app.screen.query_one(JobsTable)

        def order() -> SortOrder:
            return table.order

        await pilot.press("s")
        assert order() is SortOrder.CREATED_ASC
        assert table_ids(app) == ["first", "second", "third"]
        await pilot.press("s")
        assert order() is SortOrder.UPDATED_DESC
        assert table_ids(app)[0] == "first"
        # Clicking a time column's header sorts by it, and again flips the direction.
        await pilot.click(JobsTable, offset=(60, 0))  # the "created" header (cells 57-67)
        assert order() is SortOrder.CREATED_DESC
        await pilot.click(JobsTable, offset=(60, 0))
        assert order() is SortOrder.CREATED_ASC


async def test_workers_panel_marks_lapsed_workers(storage: Storage) -> None:
    await put(storage, "held-by-ghost")
    await storage.register_worker("ghost", 1)  # lapses at once, but still holds a job
    await claim(storage, 1, worker="ghost")
    await storage.register_worker("alive", 600_000)
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one(WorkersPanel)
        await wait_until(pilot, lambda: len(panel.records) == 2, "two workers listed")
        assert [w.id for w in panel.records] == ["alive", "ghost"]  # lapsed last
        await wait_until(pilot, lambda: "✗ ghost" in screen_text(app), "ghost drawn as lapsed")
        text = screen_text(app)
        assert "lapsed" in text
        assert "1 held-by-ghost" in text


async def test_the_fallback_refresh_catches_changes_without_events(storage: Storage) -> None:
    # Worker registrations publish no event: the periodic refresh shows them.
    app = DashboardApp(storage, refresh_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one(WorkersPanel)
        await storage.register_worker("late-worker", 600_000)
        await wait_until(
            pilot, lambda: [w.id for w in panel.records] == ["late-worker"], "late-worker listed"
        )
        await storage.unregister_worker("late-worker")
        await wait_until(pilot, lambda: panel.records == [], "late-worker gone")


async def test_mouse_click_opens_the_detail_screen(storage: Storage) -> None:
    await put(storage, "older")
    await tick()
    await put(storage, "newer")
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: table_ids(app) == ["newer", "older"], "both jobs listed")
        await pilot.click(JobsTable, offset=(3, 2))  # moves the cursor to the second row
        assert isinstance(app.screen, MainScreen)
        assert app.screen.query_one(JobsTable).selected_id == "older"
        await pilot.click(JobsTable, offset=(3, 2))  # a click on the highlighted row opens it
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail screen")
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.job_id == "older"
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_queue_switcher_shows_only_with_several_queues(storage: Storage) -> None:
    await put(storage, "default-job")
    # Another queue's jobs publish on that queue's channel: the fallback refresh discovers it.
    app = DashboardApp(storage, refresh_interval=0.3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: table_ids(app) == ["default-job"], "the default queue")
        assert app.check_action("switch_queue", ()) is False
        await wait_until(pilot, lambda: "Quit" in screen_text(app).splitlines()[-1], "the footer")
        assert "Queue" not in screen_text(app).splitlines()[-1]

        emails = storage.namespace("emails")
        await emails.connect()
        try:
            await put(emails, "email-1", "email-2")
            await wait_until(pilot, lambda: app.namespaces == ["default", "emails"], "both queues known")
            await wait_until(pilot, lambda: "g Queue" in screen_text(app).splitlines()[-1], "g in the footer")
            await pilot.press("g")
            await pilot.press("down", "enter")
            await wait_until(pilot, lambda: app.storage.name == "emails", "switched to emails")
            await wait_until(pilot, lambda: table_ids(app) == ["email-2", "email-1"], "the emails jobs")
            assert count_of(app, None) == 2
            await wait_until(pilot, lambda: "queue emails" in screen_text(app), "emails in the header")
            # Events of the new queue reach the dashboard.
            await put(emails, "email-3")
            await wait_until(pilot, lambda: count_of(app, JobState.QUEUED) == 3, "email-3 counted")
        finally:
            await emails.disconnect()


async def test_theme_toggle_and_help(storage: Storage) -> None:
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        assert app.current_theme.dark
        await pilot.press("t")
        assert not app.current_theme.dark
        await pilot.press("t")
        assert app.current_theme.dark
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        await wait_until(pilot, lambda: "search by id prefix" in screen_text(app), "the help text")
        text = screen_text(app)
        assert "search by id prefix" in text
        assert "purge every completed and failed job" in text
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_everything_fits_80_by_24(storage: Storage) -> None:
    await put(storage, *[f"job-{i}" for i in range(40)])
    long_url = "redis://:hunter2@queue-cache.internal.example.com:6379/0?prefix=production-jobs"
    app = DashboardApp(storage, url=long_url)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 40, "a page of jobs")
        for selector in ("#header", "#counts", "#throughput", "#workers", "#search", "#pager", "#jobs"):
            region = app.screen.query_one(selector).region
            assert region.width > 0, selector
            assert region.height > 0, selector
            assert region.right <= 80, selector
            assert region.bottom <= 24, selector
        jobs = app.screen.query_one("#jobs")
        assert jobs.region.height >= 10
        assert jobs.virtual_size.width <= jobs.region.width  # every column, progress included, in view
        await wait_until(pilot, lambda: "Help" in screen_text(app).splitlines()[-1], "the footer")
        lines = screen_text(app).splitlines()
        assert lines[0].startswith(" jobqueue  queue default  redis://:***@queue-cache")
        assert lines[0].rstrip().endswith("…")  # the URL is cut at the edge, not wrapped away
        assert "hunter2" not in screen_text(app)
        assert "failed 0" in lines[1]  # every count visible on the counts line
        footer = lines[-1]
        for key in ("Search", "Filter", "Cancel", "Retry", "Purge", "Quit", "Help"):
            assert key in footer, (key, footer)


async def test_live_event_log(storage: Storage) -> None:
    app = DashboardApp(storage, refresh_interval=3600)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.live, "the event stream subscribed")
        await put(storage, "logged-1")
        await wait_until(pilot, lambda: app.events_total == 1, "the enqueued event heard")
        await pilot.press("e")
        await wait_until(pilot, lambda: "enqueued    logged-1" in screen_text(app), "the event in the log")
        await complete(storage, "logged-1")  # processing, then completed, while the log is open
        await wait_until(pilot, lambda: "completed   logged-1  by worker-test" in screen_text(app), "live")
        assert "processing  logged-1  by worker-test" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
