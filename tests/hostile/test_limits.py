"""Limits: a 10 MB payload end to end on every storage, and a stop at the edge of a start.

The cost of a million queued jobs in Redis is measured by hand with
``tools/scale.py`` (minutes, not a test).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import pytest
from jobqueue import JobState, MsgpackSerde, Storage

from tests.conftest import BACKENDS, Backend
from tests.hostile.conftest import assert_no_trace, forget, worker_queue

TEN_MB = 10 * 1024 * 1024


async def test_ten_megabyte_payload_round_trips(storage: Storage) -> None:
    payload: dict[str, Any] = {"blob": os.urandom(TEN_MB), "name": "big"}
    serde: MsgpackSerde[Any] = MsgpackSerde()
    async with worker_queue(storage, payload_serde=serde, result_serde=serde) as queue:
        result = await queue.enqueue_and_wait("big", payload, timeout=60)
        assert hashlib.sha256(result["blob"]).digest() == hashlib.sha256(payload["blob"]).digest()
        assert result == payload
        status = await queue.get_status("big")
        assert status is not None and status.state is JobState.COMPLETED
        assert await queue.get_result("big") == payload
        await forget(storage, "big")
    await assert_no_trace(storage, "big")


async def test_ten_megabyte_json_text_round_trips(storage: Storage) -> None:
    payload = ["x" * 1023] * (TEN_MB // 1024)  # 10 MB of JSON
    async with worker_queue(storage) as queue:
        assert await queue.enqueue_and_wait("big-json", payload, timeout=60) == payload


@pytest.mark.parametrize("backend", [p for p in BACKENDS if p.id in ("redis", "valkey")], indirect=True)
def test_stop_in_a_later_loop_run_than_start(backend: Backend) -> None:
    with asyncio.Runner() as runner:
        storage = backend.make()
        runner.run(storage.connect())
        queue = worker_queue(storage)
        runner.run(queue.start())

        async def stop() -> bool:
            try:
                async with asyncio.timeout(3):
                    await queue.stop()
            except TimeoutError:
                return False
            return True

        stopped = runner.run(stop())
        runner.run(storage.disconnect())
    assert stopped, "Queue.stop() still running after 3 s"
