"""A subscriber that stops reading: its client-side queue stays bounded, the oldest events go first.

Memory's subscribers and Redis's pub/sub subscriptions hold at most 10,000
events each. Past that the oldest are dropped, counted (``dropped``) and
logged; events are best effort, and waiters re-read their jobs periodically.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from jobqueue import Storage
from jobqueue.storage import Channel, EventKind, NewJob, StorageEvent

from tests.conftest import BACKENDS, Backend

LIMIT = 10_000
EXTRA = 50


async def _wait_for(condition: Any, what: str, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


# files keep no client-side event queue: their subscribers read the event log
QUEUEING_BACKENDS = [param for param in BACKENDS if param.values[0] != "file"]


@pytest.mark.parametrize("backend", QUEUEING_BACKENDS, indirect=True)
async def test_a_slow_subscriber_keeps_the_newest_events(
    backend: Backend, storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [f"e{i:05d}" for i in range(LIMIT + EXTRA)]
    with caplog.at_level(logging.WARNING, logger="jobqueue"):
        async with storage.subscribe(Channel.EVENTS) as events:
            for start in range(0, len(ids), 1000):
                await storage.enqueue_many([NewJob(job_id, b"m") for job_id in ids[start : start + 1000]])
            # The drops are counted as the events arrive: EXTRA drops mean that every event arrived.
            await _wait_for(lambda: getattr(events, "dropped", None) == EXTRA, f"{EXTRA} events dropped")
            iterator = aiter(events)
            received: list[StorageEvent] = [await anext(iterator) for _ in range(LIMIT)]
            await storage.enqueue("marker", b"m")
            marker = await asyncio.wait_for(anext(iterator), timeout=30)
    assert [event.job_id for event in received] == ids[EXTRA:]  # the oldest went, in order
    assert all(event.kind is EventKind.ENQUEUED for event in received)
    assert marker.job_id == "marker"  # nothing else was pending
    assert any("events dropped so far" in record.getMessage() for record in caplog.records)
