"""SVG snapshots of the main and the detail screen, on a scene made deterministic.

The app runs on a fake clock, so that throughput buckets and ages do not
depend on when the test runs; the storage's own timestamps still do, so the
digits inside text are masked before comparing (layout, colours and words
are compared exactly). Review the SVGs by eye when they change, then:

    JOBQUEUE_UPDATE_SNAPSHOTS=1 uv run pytest tests/tui/test_tui_snapshots.py

which also refreshes ``docs/dashboard.svg`` (the README's screenshot).
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import pytest
from jobqueue import MemoryStorage
from jobqueue.storage import EventKind, StorageEvent, now_ms
from jobqueue_tui import DashboardApp
from jobqueue_tui._screens.detail import DetailScreen
from jobqueue_tui._widgets.counts import StateCount
from jobqueue_tui._widgets.jobs import JobsTable
from jobqueue_tui._widgets.throughput import ThroughputPanel
from textual.pilot import Pilot

from .tui_helpers import claim, complete, fail, put, screen_text, svg_text, wait_until

pytestmark = pytest.mark.memory

HERE = Path(__file__).parent
SNAPSHOTS = HERE / "snapshots"
DOCS_SCREENSHOT = HERE.parents[1] / "docs" / "dashboard.svg"
UPDATE = os.environ.get("JOBQUEUE_UPDATE_SNAPSHOTS") == "1"
SIZE = (100, 30)

# Completed and failed jobs per 3-second step of the fake clock: the sparkline's shape.
STEPS = [(2, 0), (4, 0), (6, 1), (8, 0), (5, 0), (9, 2), (7, 0), (3, 0), (6, 1), (10, 0), (8, 0), (4, 1)]


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def normalize(svg: str) -> str:
    """Mask what depends on the moment of the run: the digits inside text, the content hash."""
    svg = re.sub(r"terminal-\d+", "terminal", svg)
    return re.sub(
        r"(<text[^>]*>)([^<]*)(</text>)",
        lambda m: m.group(1) + re.sub(r"\d", "0", m.group(2)) + m.group(3),
        svg,
    )


def check_snapshot(svg: str, name: str, *also: Path) -> None:
    targets = [SNAPSHOTS / f"{name}.svg", *also]
    if UPDATE:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(svg, encoding="utf-8")
        return
    for target in targets:
        assert target.exists(), f"{target} is missing: run with JOBQUEUE_UPDATE_SNAPSHOTS=1 and review it"
        stored = target.read_text(encoding="utf-8")
        if normalize(stored) != normalize(svg):
            diff = difflib.unified_diff(
                svg_text(stored).splitlines(), svg_text(svg).splitlines(), "stored", "now", lineterm=""
            )
            pytest.fail(
                f"{target} differs from the screen (JOBQUEUE_UPDATE_SNAPSHOTS=1 to accept):\n"
                + "\n".join(diff)
            )


async def run_steps(pilot: Pilot[None], app: DashboardApp, storage: MemoryStorage, clock: FakeClock) -> None:
    """Finish the queued jobs step by step, each step 3 s later on the app's clock."""
    index = 0
    for done, failed in STEPS:
        clock.now += 3_000
        for _ in range(done):
            index += 1
            await complete(storage, f"order-{index:04d}", result=b'{"invoice": "INV-2041", "total": 129.5}')
        for _ in range(failed):
            index += 1
            await fail(storage, f"order-{index:04d}")
        await wait_finished(pilot, app, index)


async def wait_finished(pilot: Pilot[None], app: DashboardApp, count: int) -> None:
    await wait_until(pilot, lambda: sum(app.throughput.totals()) == count, f"{count} jobs finished")


async def test_main_and_detail_snapshots() -> None:
    total = sum(done + failed for done, failed in STEPS)
    payload = b'{"customer": 42, "items": ["A-1", "B-7"], "rush": true}'
    async with MemoryStorage() as storage:
        await put(storage, *[f"order-{i:04d}" for i in range(1, total + 1)], payload=payload)
        await storage.register_worker("worker-7f3a", 3_600_000)
        await storage.register_worker("worker-02c9", 1)  # lapses at once, with a job in hand
        clock = FakeClock(now_ms() + 60_000)
        app = DashboardApp(storage, url="memory://", clock=clock, refresh_interval=3600)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: count(app, "all") == total, "the jobs counted")
            await run_steps(pilot, app, storage, clock)
            await put(storage, *[f"order-{i:04d}" for i in range(total + 1, total + 7)], payload=payload)
            [running] = await claim(storage, 1, worker="worker-7f3a")
            await claim(storage, 1, worker="worker-02c9")
            assert await storage.set_progress(running.id, "worker-7f3a", b'{"done": 40, "total": 100}')
            # The scene's jobs took what this machine took (about 0 ms): fixed durations keep
            # the percentiles' width, hence the snapshot, the same on every run.
            app.latency.clear()
            for i, duration in enumerate([8, 12, 12, 15, 40]):
                app.latency.record(StorageEvent(EventKind.PROCESSING, f"t{i}", 1_000), clock.now)
                app.latency.record(StorageEvent(EventKind.COMPLETED, f"t{i}", 1_000 + duration), clock.now)
            app.data_changed(None)
            await wait_until(pilot, lambda: "lapsed" in screen_text(app), "the workers drawn")
            await wait_until(pilot, lambda: count(app, "processing") == 2, "two jobs processing")
            await wait_until(pilot, lambda: "40/100" in screen_text(app), "the progress drawn")
            app.screen.query_one(ThroughputPanel).redraw()
            await pilot.pause()
            check_snapshot(app.export_screenshot(), "main", DOCS_SCREENSHOT)

            failed_id = f"order-{total:04d}"  # the last job of STEPS failed
            table = app.screen.query_one(JobsTable)
            table.move_cursor(row=table.get_row_index(failed_id))
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail screen")
            await wait_until(pilot, lambda: "ValueError: boom" in screen_text(app), "the error drawn")
            check_snapshot(app.export_screenshot(), "detail")


def count(app: DashboardApp, name: str) -> int:
    return app.screen.query_one(f"#count-{name}", StateCount).count
