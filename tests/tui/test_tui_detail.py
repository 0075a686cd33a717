"""The detail screen: payload, result or error with traceback, attempts, timestamps, kept live."""

from __future__ import annotations

import re
from typing import Any

from jobqueue import Queue, Storage
from jobqueue_tui import DashboardApp
from jobqueue_tui._screens.detail import DetailScreen
from jobqueue_tui._widgets.jobs import JobsTable
from textual.pilot import Pilot

from .tui_helpers import (
    WORKER_START_S,
    claim,
    complete,
    fail,
    msgpack_bytes,
    put,
    running_worker,
    screen_text,
    shows,
    table_ids,
    wait_until,
)

SIZE = (100, 30)


async def open_detail(pilot: Pilot[None], app: DashboardApp, job_id: str) -> DetailScreen:
    await wait_until(pilot, lambda: job_id in table_ids(app), f"{job_id} listed")
    table = app.screen.query_one(JobsTable)
    table.move_cursor(row=table.get_row_index(job_id))
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), f"the detail of {job_id}")
    screen = app.screen
    assert isinstance(screen, DetailScreen)
    await wait_until(pilot, lambda: screen.record is not None, f"{job_id} loaded")
    return screen


def listed_state(app: DashboardApp, job_id: str) -> str | None:
    record = app.screen.query_one(JobsTable).records.get(job_id)
    return None if record is None else record.state.value


async def test_json_payload_and_result_of_a_completed_job(storage: Storage) -> None:
    await put(storage, "order-7", payload=b'{"sku": "A-1", "qty": 2}')
    await complete(storage, "order-7", result=b'{"shipped": true}')
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, app, "order-7")
        await wait_until(pilot, lambda: "result (json)" in screen_text(app), "the result")
        text = screen_text(app)
        assert "job order-7" in text
        assert shows(app, "state", "completed")
        assert shows(app, "attempts", "1 of 3")
        assert shows(app, "worker", "-")  # contract v2: a finished attempt holds no worker (rules.finish)
        for label in ("created", "updated", "expires", "result ttl"):
            assert re.search(rf"^ {label} ", text, re.MULTILINE), label
        assert "payload (json)" in text
        assert '"qty": 2,' in text  # pretty-printed, one key a line
        assert '"sku": "A-1"' in text
        assert '"shipped": true' in text


async def test_error_with_traceback_from_a_real_worker(storage: Storage, storage_url: str) -> None:
    producer: Queue[dict[str, Any], Any] = Queue(storage, max_attempts=1)
    app = DashboardApp(storage)
    async with app.run_test(size=(100, 40)) as pilot, producer, running_worker(storage, storage_url):
        await producer.enqueue("invoice-1", {"customer": 42})
        await wait_until(
            pilot, lambda: listed_state(app, "invoice-1") == "failed", "invoice-1 failed", WORKER_START_S
        )
        await open_detail(pilot, app, "invoice-1")
        await wait_until(pilot, lambda: "KeyError" in screen_text(app), "the error")
        text = screen_text(app)
        assert "KeyError: 'no customer 42'" in text
        assert "Traceback (most recent call last)" in text
        assert "tui_worker_app.py" in text  # the handler's frame is in the stored traceback
        assert shows(app, "attempts", "1 of 1")


async def test_msgpack_binary_and_unreadable_messages(storage: Storage) -> None:
    await put(storage, "packed", payload=msgpack_bytes({"blob": b"\x00\x01", "n": 3}))
    await put(storage, "binary", payload=b"\xff\xfe\x00\x80 raw")
    assert (await storage.enqueue("poison", b"\xc1 not an envelope")).accepted
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, app, "packed")
        await wait_until(pilot, lambda: "payload (msgpack)" in screen_text(app), "the msgpack payload")
        assert '"n": 3' in screen_text(app)
        assert "<2 bytes: 00 01>" in screen_text(app)
        await pilot.press("escape")

        await open_detail(pilot, app, "binary")
        await wait_until(pilot, lambda: "payload (hex)" in screen_text(app), "the hex payload")
        assert "ff fe 00 80 20 72 61 77" in screen_text(app)
        await pilot.press("escape")

        await open_detail(pilot, app, "poison")
        await wait_until(
            pilot, lambda: "message (unreadable envelope)" in screen_text(app), "the raw message"
        )
        assert shows(app, "attempts", "0 of ?")


async def test_the_detail_follows_the_job_live(storage: Storage) -> None:
    await put(storage, "live")
    app = DashboardApp(storage, refresh_interval=3600)  # only events can update the screen in time
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, app, "live")
        await wait_until(pilot, lambda: shows(app, "state", "queued"), "queued")
        assert "no result yet" in screen_text(app)
        await claim(storage, 1)
        await wait_until(pilot, lambda: shows(app, "state", "processing"), "processing")
        assert "lease until" in screen_text(app)
        assert await storage.retry("live", "worker-test", b'{"message": "later", "type": "OSError"}', 60_000)
        await wait_until(pilot, lambda: shows(app, "state", "failing"), "failing")
        assert "last error (a retry is pending)" in screen_text(app)
        assert "runs at" in screen_text(app)
        await storage.cancel("live")
        await wait_until(pilot, lambda: "This job is gone" in screen_text(app), "gone after cancel")


async def test_failed_job_detail_shows_the_final_error(storage: Storage) -> None:
    await put(storage, "bad")
    await fail(storage, "bad")
    app = DashboardApp(storage)
    async with app.run_test(size=SIZE) as pilot:
        await open_detail(pilot, app, "bad")
        await wait_until(pilot, lambda: "ValueError: boom" in screen_text(app), "the stored error")
        text = screen_text(app)
        assert "code HANDLER_ERROR" in text
        assert 'File "app.py", line 7' in text
        assert "last error" not in text
