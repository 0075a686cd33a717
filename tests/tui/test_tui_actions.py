"""Cancel, retry and purge: confirmed in a modal, acted on storage, hidden in read-only mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobqueue import JobState, Queue, Storage
from jobqueue.storage import Monitoring
from jobqueue_tui import DashboardApp
from jobqueue_tui._screens.confirm import ConfirmScreen
from jobqueue_tui._screens.detail import DetailScreen
from jobqueue_tui._screens.main import MainScreen
from jobqueue_tui._widgets.counts import StateCount
from jobqueue_tui._widgets.jobs import JobsTable
from textual.pilot import Pilot

from .tui_helpers import (
    WORKER_START_S,
    claim,
    complete,
    fail,
    put,
    running_worker,
    screen_text,
    shows,
    table_ids,
    tick,
    wait_until,
)

SIZE = (100, 30)


async def select(pilot: Pilot[None], app: DashboardApp, job_id: str) -> None:
    await wait_until(pilot, lambda: job_id in table_ids(app), f"{job_id} listed")
    table = app.screen.query_one(JobsTable)
    table.move_cursor(row=table.get_row_index(job_id))
    assert table.selected_id == job_id


async def confirm(pilot: Pilot[None], app: DashboardApp, key: str, answer: str) -> str:
    """Press ``key``, check that a confirmation is asked, answer it; return the question."""
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), f"a confirmation after {key}")
    assert isinstance(app.screen, ConfirmScreen)
    question = app.screen.question
    await pilot.press(answer)
    await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the dialog closed")
    return question


def notifications(app: DashboardApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_cancel_a_queued_job_after_confirmation(storage: Storage) -> None:
    await put(storage, "keep", "drop")
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, "drop")
        assert await confirm(pilot, app, "c", "n") == "Cancel job drop?"
        assert await storage.get("drop") is not None  # "no" changes nothing

        await select(pilot, app, "drop")
        await confirm(pilot, app, "c", "y")
        await wait_until(pilot, lambda: table_ids(app) == ["keep"], "drop gone from the table")
        assert await storage.get("drop") is None
        assert (await storage.get("keep")) is not None
        assert "cancelled queued job drop" in notifications(app)


async def test_cancel_explains_a_job_that_cannot_be_cancelled(storage: Storage) -> None:
    await put(storage, "running")
    await claim(storage, 1)
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, "running")
        await confirm(pilot, app, "c", "y")
        await wait_until(pilot, lambda: bool(notifications(app)), "a notification")
        assert notifications(app) == ["job running is processing: it cannot be cancelled"]
        record = await storage.get("running")
        assert record is not None
        assert record.state is JobState.PROCESSING


async def test_retry_a_failed_job_and_a_real_worker_runs_it_again(
    storage: Storage, storage_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran-once"
    producer: Queue[dict[str, Any], Any] = Queue(storage, max_attempts=1)
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot, producer, running_worker(storage, storage_url):
        await producer.enqueue("flaky", {"fail_once": str(marker)})
        await wait_until(pilot, lambda: count(app, "failed") == 1, "flaky failed", WORKER_START_S)
        assert marker.exists()
        await select(pilot, app, "flaky")
        assert await confirm(pilot, app, "r", "y") == "Retry failed job flaky?"
        await wait_until(pilot, lambda: count(app, "completed") == 1, "flaky completed")
        record = await storage.get("flaky")
        assert record is not None
        assert record.state is JobState.COMPLETED
        assert record.attempts == 1  # attempts were reset by the retry


def count(app: DashboardApp, state: str) -> int:
    return app.screen.query_one(f"#count-{state}", StateCount).count


async def test_retry_refuses_a_job_that_is_not_failed(storage: Storage) -> None:
    await put(storage, "queued-job")
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, "queued-job")
        await confirm(pilot, app, "r", "y")
        await wait_until(pilot, lambda: bool(notifications(app)), "a notification")
        assert notifications(app) == ["job queued-job is not failed: nothing to retry"]


async def test_purge_finished_jobs(storage: Storage) -> None:
    await put(storage, "done-1", "done-2", "failed-1", "waiting")
    await complete(storage, "done-1")
    await complete(storage, "done-2")
    await fail(storage, "failed-1")
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(table_ids(app)) == 4, "4 jobs listed")
        assert (
            await confirm(pilot, app, "p", "escape")
            == "Purge every completed and failed job of queue default?"
        )
        assert isinstance(storage, Monitoring)
        assert (await storage.counts())[JobState.COMPLETED] == 2  # escape answers no
        await confirm(pilot, app, "p", "y")
        await wait_until(pilot, lambda: table_ids(app) == ["waiting"], "only the waiting job")
        counts = await storage.counts()
        assert counts[JobState.COMPLETED] == counts[JobState.FAILED] == 0
        assert counts[JobState.QUEUED] == 1
        assert "purged 3 finished jobs" in notifications(app)


async def test_cancel_and_retry_from_the_detail_screen(storage: Storage) -> None:
    await put(storage, "broken")
    await fail(storage, "broken")
    await tick()
    await put(storage, "pending")
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, "broken")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail of broken")
        await confirm(pilot, app, "r", "y")
        await wait_until(pilot, lambda: shows(app, "state", "queued"), "broken queued again")
        await pilot.press("escape")

        await select(pilot, app, "pending")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail of pending")
        await confirm(pilot, app, "c", "y")
        await wait_until(pilot, lambda: "This job is gone" in screen_text(app), "pending gone")
        assert await storage.get("pending") is None


async def test_read_only_hides_every_action(storage: Storage) -> None:
    await put(storage, "failed-job", "queued-job")
    await fail(storage, "failed-job")
    app = DashboardApp(storage, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, "queued-job")
        await wait_until(pilot, lambda: "Quit" in screen_text(app).splitlines()[-1], "the footer")
        assert "read-only" in screen_text(app).splitlines()[0]
        footer = screen_text(app).splitlines()[-1]
        for hidden in ("Cancel", "Retry", "Purge"):
            assert hidden not in footer
        await pilot.press("c", "p")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        await select(pilot, app, "failed-job")
        await pilot.press("r", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail screen")
        await pilot.press("c", "r")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        await wait_until(pilot, lambda: "Back" in screen_text(app).splitlines()[-1], "the detail footer")
        assert "Cancel" not in screen_text(app).splitlines()[-1]
        await pilot.press("escape", "question_mark")
        await wait_until(pilot, lambda: "Read-only" in screen_text(app), "the read-only help")
        assert "purge every" not in screen_text(app)
    queued = await storage.get("queued-job")
    assert queued is not None
    assert queued.state is JobState.QUEUED
    failed = await storage.get("failed-job")
    assert failed is not None
    assert failed.state is JobState.FAILED
