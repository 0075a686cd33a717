"""Corrupt stored data on every storage: garbage written straight into Redis, the files or memory.

A poison message fails its job with ``DECODE_ERROR`` and the worker serves the
next one; a garbage result makes reads raise ``SerializationError`` (never
hang); a record with an unknown state is reported as ``CorruptDataError``
naming the job, while ``counts``/``list_jobs`` (what the dashboard shows) still
answer.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

import asyncpg
import msgpack
import pytest
from jobqueue import (
    CorruptDataError,
    JobFailedError,
    JobState,
    MemoryStorage,
    Queue,
    SerializationError,
    Storage,
)
from jobqueue.storage import Envelope, encode_envelope
from jobqueue_file import FileStorage
from jobqueue_postgres import PostgresStorage
from jobqueue_redis import RedisStorage
from redis.asyncio import Redis

from tests.conftest import BACKENDS, Backend
from tests.hostile.conftest import monitor, wait_until, worker_queue

VALID_ENVELOPE = encode_envelope(Envelope(b'{"x":1}', 1, 3, 60_000))
BAD_MESSAGES = {
    "truncated": VALID_ENVELOPE[:-3],
    "garbage": b"\xc1\xff not msgpack at all",
    "empty": b"",
    "wrong-layout": msgpack.packb([1, 2, 3]),
    "bad-payload": encode_envelope(Envelope(b"{not json", 1, 3, 60_000)),
}
_FILE_FIELDS = {
    "state": 2,
    "message": 3,
    "result": 10,
    "error": 11,
}  # positions in the file storage's record array
_REDIS_FIELDS = {
    "state": b"st",
    "message": b"m",
    "result": b"res",
    "error": b"e",
}  # jobqueue_redis/_records.py


async def tamper(backend: Backend, storage: Storage, job_id: str, field: str, value: bytes | str) -> None:
    """Overwrite one field of a stored job record, bypassing the storage's API."""
    if isinstance(storage, MemoryStorage):
        jobs = storage._store.state(storage.name).jobs  # the memory storage's own state
        record = jobs.get(job_id)
        assert record is not None
        jobs.set(job_id, replace(record, **{field: value}))  # type: ignore[arg-type]  # any field
    elif isinstance(storage, RedisStorage):
        assert backend.server_url is not None
        client = Redis.from_url(backend.server_url)
        live, finished = storage.keys.fixed("live"), storage.keys.job(job_id)
        try:
            packed = await client.hget(live, job_id)
            fields = msgpack.unpackb(packed or await client.get(finished), raw=True)
            fields[_REDIS_FIELDS[field]] = value.encode() if isinstance(value, str) else value
            repacked = msgpack.packb(fields, use_bin_type=False)
            if packed:
                await client.hset(live, job_id, repacked)
            else:
                assert await client.set(finished, repacked, keepttl=True)
        finally:
            await client.aclose()
    elif isinstance(storage, PostgresStorage):
        assert backend.server_url is not None and field in _REDIS_FIELDS  # the columns have these names
        conn = await asyncpg.connect(backend.server_url)
        try:
            status = await conn.execute(
                f'UPDATE "{storage.schema}".jobs SET {field} = $1 WHERE namespace = $2 AND id = $3',
                value,
                storage.name.encode(),
                job_id.encode(),
            )
            assert status == "UPDATE 1", status
        finally:
            await conn.close()
    else:
        assert isinstance(storage, FileStorage)
        path = backend.directory / storage.name / "jobs" / job_id  # plain ids encode to themselves
        items = msgpack.unpackb(path.read_bytes()[:-4], raw=False)  # msgpack, then its CRC-32 (4 bytes)
        items[_FILE_FIELDS[field]] = value
        packed = msgpack.packb(items, use_bin_type=True)
        temp = path.with_name(".tamper")
        temp.write_bytes(packed + zlib.crc32(packed).to_bytes(4, "little"))  # a record the storage accepts
        os.replace(temp, path)


async def within(call: Awaitable[Any], seconds: float = 5.0) -> Any:
    """Await ``call``, failing if it takes longer than ``seconds`` (a hang is a bug too)."""
    async with asyncio.timeout(seconds):
        return await call


async def _state(queue: Queue[Any, Any], job_id: str) -> JobState | None:
    status = await queue.get_status(job_id)
    return None if status is None else status.state


@pytest.mark.parametrize("kind", list(BAD_MESSAGES))
async def test_poison_message_fails_with_decode_error_and_the_worker_goes_on(
    backend: Backend, storage: Storage, kind: str
) -> None:
    producer: Queue[Any, Any] = Queue(storage)
    await producer.enqueue("poison", {"x": 1})
    await producer.enqueue("before", {"n": 1})
    await tamper(backend, storage, "poison", "message", BAD_MESSAGES[kind])
    async with worker_queue(storage) as queue:
        await wait_until(lambda: _is(queue, "poison", JobState.FAILED))
        assert await within(queue.enqueue_and_wait("after", {"n": 2}, timeout=10)) == {"n": 2}
        assert await queue.get_result("before") == {"n": 1}
        status = await queue.get_status("poison")
        assert status is not None and status.error is not None
        assert status.error["code"] == "DECODE_ERROR"
        assert status.error["type"] in ("CorruptDataError", "SerializationError")
        assert (
            "job message" in status.error["message"] or "payload of job 'poison'" in status.error["message"]
        )
        assert status.attempts == 1  # failed once, not retried in a loop
        counts = await monitor(storage).counts()
        assert (counts[JobState.FAILED], counts[JobState.COMPLETED]) == (1, 2)


async def _is(queue: Queue[Any, Any], job_id: str, state: JobState) -> bool:
    return await _state(queue, job_id) is state


async def test_garbage_result_raises_serialization_error_and_the_worker_goes_on(
    backend: Backend, storage: Storage
) -> None:
    async with worker_queue(storage) as queue:
        assert await queue.enqueue_and_wait("done", {"x": 1}, timeout=10) == {"x": 1}
        await tamper(backend, storage, "done", "result", b"\xff\xfe{ not json")
        for read in (queue.get_status("done"), queue.get_result("done"), queue.enqueue("done", {"x": 1})):
            with pytest.raises(SerializationError, match="result of job 'done'"):
                await within(read)
        with pytest.raises(SerializationError, match="result of job 'done'"):
            await within(queue.enqueue_and_wait("done", {"x": 1}, timeout=10))
        assert await within(queue.enqueue_and_wait("next", {"y": 2}, timeout=10)) == {"y": 2}
        counts = await within(monitor(storage).counts())
        assert counts[JobState.COMPLETED] == 2
        page = await within(monitor(storage).list_jobs())
        assert sorted(record.id for record in page.records) == ["done", "next"]


async def test_garbage_error_is_reported_as_corrupt(backend: Backend, storage: Storage) -> None:
    producer: Queue[Any, Any] = Queue(storage)
    await producer.enqueue("broken", {"x": 1})
    await tamper(backend, storage, "broken", "message", b"\xc1")
    async with worker_queue(storage) as queue:
        await wait_until(lambda: _is(queue, "broken", JobState.FAILED))
        await tamper(backend, storage, "broken", "error", b"\x00 not json")
        status = await within(queue.get_status("broken"))
        assert status is not None and status.error is not None
        assert status.error["code"] == "CORRUPT" and "unreadable stored error" in status.error["message"]
        with pytest.raises(JobFailedError, match="broken"):
            await within(queue.enqueue_and_wait("broken", {"x": 1}, timeout=10))
        assert await within(queue.enqueue_and_wait("next", {"y": 2}, timeout=10)) == {"y": 2}


# Memory holds typed records: an unknown state cannot be stored there.
# PostgreSQL refuses an unknown state itself (a CHECK constraint), so it cannot be stored there.
@pytest.mark.parametrize(
    "backend", [p for p in BACKENDS if p.id not in ("memory", "postgres")], indirect=True
)
async def test_unknown_state_is_reported_naming_the_job(backend: Backend, storage: Storage) -> None:
    """The storage refuses to invent a state: reads of that job raise ``CorruptDataError`` naming it.

    ``counts`` still answers; ``list_jobs`` skips the record (files) or names
    it in the error (Redis); a worker serves the other jobs.
    """
    producer: Queue[Any, Any] = Queue(storage)
    await producer.enqueue("odd", {"x": 1})
    await tamper(backend, storage, "odd", "state", "exploded")
    with pytest.raises(CorruptDataError, match="odd"):
        await within(producer.get_status("odd"))
    with pytest.raises(CorruptDataError, match="odd"):
        await within(storage.get("odd"))
    counts = await within(monitor(storage).counts())
    assert set(counts) == set(JobState)
    assert sum(counts.values()) <= 1
    if backend.kind == "file":  # logs the unreadable file and lists the others
        assert (await within(monitor(storage).list_jobs())).records == []
    else:  # Redis: the whole page fails, naming the job
        with pytest.raises(CorruptDataError, match="odd"):
            await within(monitor(storage).list_jobs())
    async with worker_queue(storage) as queue:
        assert await within(queue.enqueue_and_wait("fine", {"y": 1}, timeout=10)) == {"y": 1}
    with pytest.raises(CorruptDataError, match="odd"):
        await within(producer.get_status("odd"))
