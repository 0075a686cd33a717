"""Limits: a 10 MB payload end to end on every storage.

The cost of a million queued jobs in Redis is measured by hand with
``tools/scale.py`` (minutes, not a test).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from jobqueue import JobState, MsgpackSerde, Storage

from tests.hostile.conftest import assert_no_trace, worker_queue

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
        assert await storage.delete("big")
    await assert_no_trace(storage, "big")


async def test_ten_megabyte_json_text_round_trips(storage: Storage) -> None:
    payload = ["x" * 1023] * (TEN_MB // 1024)  # 10 MB of JSON
    async with worker_queue(storage) as queue:
        assert await queue.enqueue_and_wait("big-json", payload, timeout=60) == payload
