"""100,000 jobs: the dashboard loads one page at a time and stays responsive."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from jobqueue import JobState, MemoryStorage
from jobqueue.storage import JobPage
from jobqueue_tui import DashboardApp
from jobqueue_tui._widgets.counts import StateCount
from jobqueue_tui._widgets.jobs import JobsTable

from .tui_helpers import envelope, table_ids, wait_until

pytestmark = pytest.mark.memory

JOBS = 100_000


class RecordingStorage(MemoryStorage):
    """A real MemoryStorage that remembers the page sizes the dashboard asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.limits: list[int] = []

    async def list_jobs(
        self,
        *,
        state: JobState | None = None,
        prefix: str = "",
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        self.limits.append(limit)
        return await super().list_jobs(state=state, prefix=prefix, cursor=cursor, limit=limit)


async def test_a_hundred_thousand_jobs_are_paged_not_loaded() -> None:
    async with RecordingStorage() as storage:
        message = envelope()
        for i in range(JOBS):
            await storage.enqueue(f"job-{i:06d}", message)
        app = DashboardApp(storage, page_size=40)
        async with app.run_test(size=(100, 30)) as pilot:
            started = time.monotonic()
            await wait_until(pilot, lambda: table_ids(app)[:1] == ["job-099999"], "the newest page")
            first_page = time.monotonic() - started
            assert len(table_ids(app)) == 40
            assert app.screen.query_one("#count-all", StateCount).count == JOBS

            await pilot.press("right_square_bracket")
            await wait_until(pilot, lambda: table_ids(app)[:1] == ["job-099959"], "page 2")
            assert len(table_ids(app)) == 40

            await pilot.press("slash", *"job-05000")
            await wait_until(pilot, lambda: table_ids(app)[:1] == ["job-050009"], "the prefix search")
            assert table_ids(app) == [f"job-05000{i}" for i in range(9, -1, -1)]

            # Keys are handled while the storage is this big: the cursor moves at once.
            await pilot.press("escape", "down", "down")
            assert app.screen.query_one(JobsTable).cursor_row == 2
        assert storage.limits
        assert set(storage.limits) == {40}
        assert first_page < 10, f"the first page took {first_page:.1f}s"


class SlowStorage(MemoryStorage):
    """A real MemoryStorage whose listing takes as long as a big remote one."""

    async def list_jobs(
        self,
        *,
        state: JobState | None = None,
        prefix: str = "",
        cursor: str | None = None,
        limit: int = 50,
    ) -> JobPage:
        await asyncio.sleep(0.6)  # latency of the simulated storage, not a wait of the test
        return await super().list_jobs(state=state, prefix=prefix, cursor=cursor, limit=limit)


async def test_a_steady_stream_of_events_does_not_starve_a_slow_storage() -> None:
    async with SlowStorage() as storage:
        app = DashboardApp(storage)
        async with app.run_test(size=(100, 30)) as pilot:

            async def produce() -> None:
                for i in range(1000):
                    await storage.enqueue(f"stream-{i:04d}", envelope())
                    await asyncio.sleep(0.05)  # an event every 50 ms: faster than one load

            producer = asyncio.create_task(produce())
            try:
                await wait_until(
                    pilot, lambda: len(table_ids(app)) >= 10, "the table to catch up", timeout=15
                )
                assert not producer.done()  # caught up while the stream still flows
            finally:
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer
