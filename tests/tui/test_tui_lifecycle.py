"""Start-up and shut-down: one connection taken and given back, every worker stopped, events first."""

from __future__ import annotations

import asyncio

import pytest
from jobqueue import JobState, StorageError, storage_from_url
from jobqueue.storage import Monitoring
from jobqueue_tui import DashboardApp
from jobqueue_tui._widgets.counts import StateCount
from textual.worker import WorkerState

from tools.servers import ServerProcess

from .tui_helpers import put, screen_text, wait_until

SIZE = (100, 30)


async def test_exit_stops_every_worker_and_disconnects(storage_url: str) -> None:
    storage = storage_from_url(storage_url)  # not connected: the app takes the only connection
    app = DashboardApp(storage, url=storage_url)
    async with app.run_test(size=SIZE) as pilot:
        await put(app.storage, "job-1")
        await wait_until(pilot, lambda: app.screen.query_one("#count-queued", StateCount).count == 1, "job-1")
        workers = list(app.workers)
        assert any(w.group == "events" and w.state is WorkerState.RUNNING for w in workers)
        await pilot.press("q")
    assert app.return_code == 0
    assert workers
    assert all(w.is_finished for w in workers), [(w.name, w.state) for w in workers]
    assert isinstance(storage, Monitoring)
    with pytest.raises(StorageError, match="not connected"):
        await storage.counts()


@pytest.mark.redis
async def test_an_unreachable_storage_ends_the_app_with_a_message(unused_tcp_port: int) -> None:
    storage = storage_from_url(f"redis://127.0.0.1:{unused_tcp_port}/0")
    app = DashboardApp(storage, url=f"redis://:secret@127.0.0.1:{unused_tcp_port}/0")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.return_code is not None, "the app to give up")
    assert app.return_code == 1


async def test_counts_start_from_what_is_already_stored(storage_url: str) -> None:
    storage = storage_from_url(storage_url)
    async with storage:
        await put(storage, "a", "b", "c")
        app = DashboardApp(storage, refresh_interval=3600)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(
                pilot, lambda: app.screen.query_one("#count-all", StateCount).count == 3, "3 jobs"
            )
            assert app.screen.query_one(f"#count-{JobState.QUEUED.value}", StateCount).count == 3


@pytest.mark.redis
@pytest.mark.usefixtures("redis_url")  # skips or fails, as configured, without redis-server
async def test_a_lost_server_is_shown_and_the_dashboard_recovers() -> None:
    server = await asyncio.to_thread(ServerProcess.start_new, "redis")
    try:
        storage = storage_from_url(f"{server.url}?prefix=lost")
        app = DashboardApp(storage, url=server.url, refresh_interval=0.3)
        async with app.run_test(size=SIZE) as pilot:
            await put(app.storage, "before")
            await wait_until(pilot, lambda: count(app, "all") == 1, "the job counted")
            await asyncio.to_thread(server.kill)  # SIGKILL: the server is gone at once
            await wait_until(pilot, lambda: "storage error" in header(app), "the problem in the header")
            await asyncio.to_thread(server.start)  # same port, no data kept
            await wait_until(pilot, lambda: "storage error" not in header(app), "the problem cleared")
            await put(app.storage, "after-1", "after-2")
            await wait_until(pilot, lambda: count(app, "all") == 2, "the new jobs counted")
    finally:
        await asyncio.to_thread(server.close)


def count(app: DashboardApp, name: str) -> int:
    return app.screen.query_one(f"#count-{name}", StateCount).count


def header(app: DashboardApp) -> str:
    return screen_text(app).splitlines()[0]
