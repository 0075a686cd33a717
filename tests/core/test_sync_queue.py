"""``SyncQueue``: blocking methods, many threads, inside a running loop, no thread left behind."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from jobqueue import (
    Job,
    JobFailedError,
    JobNotFoundError,
    JobQueueError,
    JobState,
    JobTimeoutError,
    MemoryStorage,
    Queue,
    SyncQueue,
    storage_from_url,
)


async def handle(job: Job[Any]) -> Any:
    payload = job.payload
    if isinstance(payload, dict):
        if payload.get("fail"):
            raise ValueError("boom")
        if payload.get("block"):
            await asyncio.sleep(3600)
    return {"echo": payload}


@contextmanager
def worker_for(sync: SyncQueue[Any, Any], storage_url: str) -> Iterator[None]:
    """A worker on the storage of ``sync``: on its loop for memory (one process, one loop), else a thread."""
    if storage_url == "memory://":
        sync.open()
        loop = sync._loop
        assert loop is not None
        queue: Queue[Any, Any] = Queue(sync._queue.storage.namespace(sync.name), visibility_timeout=5)
        queue.execute(handle)
        asyncio.run_coroutine_threadsafe(queue.start(), loop).result()
        try:
            yield
        finally:
            asyncio.run_coroutine_threadsafe(queue.stop(0), loop).result()
        return
    stop = threading.Event()
    started = threading.Event()

    async def run() -> None:
        queue: Queue[Any, Any] = Queue(
            storage_from_url(storage_url).namespace(sync.name), visibility_timeout=5
        )
        queue.execute(handle)
        async with queue:
            started.set()
            await asyncio.to_thread(stop.wait)
            await queue.stop(0)

    thread = threading.Thread(target=asyncio.run, args=(run(),))
    thread.start()
    try:
        assert started.wait(30)
        yield
    finally:
        stop.set()
        thread.join(30)


@pytest.fixture
def sync(storage_url: str) -> Iterator[SyncQueue[Any, Any]]:
    queue: SyncQueue[Any, Any] = SyncQueue(storage_url, name="sync-tests")
    with queue:
        yield queue


def test_blocking_methods(sync: SyncQueue[Any, Any], storage_url: str) -> None:
    first = sync.enqueue("a", {"n": 1}, priority=5, max_attempts=1)
    assert first.status == "queued"
    assert sync.enqueue("a", {"n": 1}).status == "duplicate"
    results = sync.enqueue_many([("b", 2), ("c", 3), ("b", 2)])
    assert [r.status for r in results] == ["queued", "queued", "duplicate"]
    status = sync.get_status("a")
    assert status is not None and status.state is JobState.QUEUED
    assert sync.cancel("c") == "cancelled"
    assert sync.get_status("c") is None
    assert sync.abort("missing") == "not_found"
    with worker_for(sync, storage_url):
        assert sync.enqueue_and_wait("d", {"n": 4}, timeout=30) == {"echo": {"n": 4}}
        assert sync.wait("a", timeout=30) == {"echo": {"n": 1}}
        assert sync.wait("b", timeout=30) == {"echo": 2}
        assert sync.get_result("d") == {"echo": {"n": 4}}
        assert sync.update_result_ttl("d", 60) == "updated"
        with pytest.raises(JobFailedError, match="boom"):
            sync.enqueue_and_wait("e", {"fail": True}, timeout=30, max_attempts=1)
        with pytest.raises(JobTimeoutError):
            sync.enqueue_and_wait("f", {"block": True}, timeout=0.2)
        assert sync.abort("f") == "processing"
        with pytest.raises(JobFailedError, match="aborted while running"):
            sync.wait("f", timeout=30)
        sync.enqueue("g", 7, delay=3600)
        assert sync.cancel("g") == "cancelled"
    with pytest.raises(JobNotFoundError):
        sync.wait("never-enqueued", timeout=1)


def test_bad_arguments_raise_in_the_caller(sync: SyncQueue[Any, Any]) -> None:
    with pytest.raises(ValueError, match="priority must be between"):
        sync.enqueue("a", 1, priority=5000)
    with pytest.raises(ValueError, match="enqueue_many needs at least one"):
        sync.enqueue_many([])
    with pytest.raises(ValueError, match="timeout"):
        sync.wait("a", timeout=-1)
    with pytest.raises(TypeError, match="unknown job option"):
        sync.enqueue("a", 1, colour="blue")  # type: ignore[call-arg]


def test_many_threads_at_once(sync: SyncQueue[Any, Any], storage_url: str) -> None:
    def client(n: int) -> list[Any]:
        return [sync.enqueue_and_wait(f"job-{n}-{i}", [n, i], timeout=60) for i in range(10)]

    with worker_for(sync, storage_url), ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(client, range(12)))
    assert results == [[{"echo": [n, i]} for i in range(10)] for n in range(12)]


def test_works_inside_a_running_event_loop(sync: SyncQueue[Any, Any], storage_url: str) -> None:
    async def inside() -> Any:
        # a sync library called from async code: no "event loop is already running" error
        sync.enqueue("loop-1", {"n": 1})
        return sync.wait("loop-1", timeout=30)

    with worker_for(sync, storage_url):
        assert asyncio.run(inside()) == {"echo": {"n": 1}}


def test_lazy_open_and_close_leave_no_thread() -> None:
    before = set(threading.enumerate())
    queue: SyncQueue[int, int] = SyncQueue(MemoryStorage())
    assert set(threading.enumerate()) == before  # nothing runs until first use
    assert queue.enqueue("a", 1).status == "queued"
    assert {thread.name for thread in set(threading.enumerate()) - before} == {"jobqueue-sync"}
    queue.close()
    queue.close()
    assert set(threading.enumerate()) == before
    with pytest.raises(JobQueueError, match="closed"):
        queue.enqueue("b", 2)


def test_close_fails_pending_waits() -> None:
    queue: SyncQueue[int, int] = SyncQueue("memory://")
    queue.enqueue("a", 1)
    errors: list[BaseException] = []

    def waiter() -> None:
        try:
            queue.wait("a", timeout=60)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    deadline = time.monotonic() + 30
    while "a" not in queue._queue._waiters._armed:  # the wait is registered and pending
        assert time.monotonic() < deadline
        time.sleep(0.01)
    queue.close()
    thread.join(30)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], JobQueueError), errors
    assert "stopped while waiting" in str(errors[0])


def test_repr_tells_the_state() -> None:
    queue: SyncQueue[int, int] = SyncQueue("memory://")
    assert repr(queue) == "<SyncQueue 'default' idle>"
    with queue:
        assert repr(queue) == "<SyncQueue 'default' open>"
    assert repr(queue) == "<SyncQueue 'default' closed>"


def in_forked_child(action: Callable[[], bool]) -> int:
    """Run ``action`` in a forked child; its exit code: 0 True, 1 False, 2 raised."""
    with warnings.catch_warnings():
        # Python 3.12 warns that forking a multi-threaded process is risky: that risk is the test
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 2
        try:
            code = 0 if action() else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_forked_child_connects_anew(storage_url: str) -> None:
    queue: SyncQueue[int, int] = SyncQueue(storage_url, name="forks")
    with queue:
        assert queue.enqueue("parent", 1).status == "queued"
        assert in_forked_child(lambda: queue.enqueue("child", 2).status == "queued") == 0
        assert queue.enqueue("after", 3).status == "queued"  # the parent's loop is unharmed
        if storage_url != "memory://":  # memory lives in one process; others are shared
            assert queue.get_status("child") is not None


def test_a_forked_child_cannot_reuse_a_storage_instance() -> None:
    queue: SyncQueue[int, int] = SyncQueue(MemoryStorage())
    with queue:
        queue.enqueue("parent", 1)

        def refused() -> bool:
            try:
                queue.enqueue("child", 2)
            except JobQueueError as exc:
                return "give it a URL" in str(exc)
            return False

        assert in_forked_child(refused) == 0
