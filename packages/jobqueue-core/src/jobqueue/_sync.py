"""``SyncQueue``: a blocking producer for synchronous code (Django, Flask, scripts, notebooks)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar, Unpack

from ._contract.storage import Storage
from ._durations import Duration
from ._errors import JobQueueError
from ._queue import Queue
from ._serde import Serde
from ._tasks import cancel_and_wait
from ._types import CancelResult, EnqueueResult, JobOptions, JobStatus, UpdateTtlResult
from ._urls import storage_from_url

__all__ = ["SyncQueue"]

P = TypeVar("P")
R = TypeVar("R")
T = TypeVar("T")


class SyncQueue(Generic[P, R]):
    """The producing side of a ``Queue`` as plain blocking methods.

    It runs a private event loop in a thread of its own, started on first use
    and ended by ``close()`` (or the end of a ``with`` block), which leaves no
    thread behind. Its methods are safe to call from many threads at once,
    and from a thread that runs an event loop of its own (the call blocks that
    loop while it waits, like any blocking call).

    ``storage_or_url`` is a ``Storage`` or a URL for ``storage_from_url``; a
    storage passed in belongs to this object from then on (it is connected
    and disconnected on its loop). The options are the producing ones of
    ``Queue`` and mean the same.

    Example::

        with SyncQueue("redis://localhost:6379/0") as queue:
            queue.enqueue("report-42", {"user": 42})
            print(queue.enqueue_and_wait("sum-1", [1, 2], timeout=10))
    """

    def __init__(
        self,
        storage_or_url: Storage | str,
        *,
        name: str | None = None,
        max_attempts: int = 3,
        result_ttl: Duration = 3600.0,
        payload_serde: Serde[Any] | None = None,
        result_serde: Serde[Any] | None = None,
        logger: Any = None,
    ) -> None:
        self._url = storage_or_url if isinstance(storage_or_url, str) else None
        self._options: dict[str, Any] = {
            "name": name,
            "max_attempts": max_attempts,
            "result_ttl": result_ttl,
            "payload_serde": payload_serde,
            "result_serde": result_serde,
            "logger": logger,
        }
        storage = storage_from_url(storage_or_url) if isinstance(storage_or_url, str) else storage_or_url
        self._queue: Queue[P, R] = Queue(storage, **self._options)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False

    @property
    def name(self) -> str:
        """The namespace this queue lives in."""
        return self._queue.name

    def open(self) -> None:
        """Start the loop thread and connect the storage (done on first use; idempotent).

        Raises:
            JobQueueError: the queue was closed.
            StorageError: the storage cannot be reached.
        """
        with self._lock:
            if self._closed:
                raise JobQueueError("this SyncQueue is closed")
            if self._pid != os.getpid() and self._loop is not None:
                # a forked child (gunicorn --preload, prefork pools) inherits the loop but not its
                # thread, and connections it must not share with the parent: start afresh
                if self._url is None:
                    raise JobQueueError(
                        "this SyncQueue was opened before the process forked; give it a URL (not a "
                        "Storage) so that a child process can connect anew"
                    )
                self._loop = self._thread = None
                self._queue = Queue(storage_from_url(self._url), **self._options)
            self._pid = os.getpid()
            if self._loop is not None:
                return
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="jobqueue-sync", daemon=True)
            thread.start()
            try:
                asyncio.run_coroutine_threadsafe(self._queue.start(), loop).result()
            except BaseException:
                _end_loop(loop, thread)
                raise
            self._loop, self._thread = loop, thread

    def close(self) -> None:
        """Disconnect and end the loop thread; waits already running fail. Idempotent."""
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if threading.current_thread() is thread:
            raise JobQueueError("SyncQueue.close() cannot run on its own loop thread")
        try:
            asyncio.run_coroutine_threadsafe(self._queue.stop(), loop).result()
        finally:
            _end_loop(loop, thread)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, call: Callable[[Queue[P, R]], Coroutine[Any, Any, T]]) -> T:
        # the coroutine is made after open(): in a forked child it must use the rebuilt queue
        self.open()  # cheap once open: a lock and two checks
        loop = self._loop
        if loop is None:  # closed by another thread in between
            raise JobQueueError("this SyncQueue is closed")
        if threading.current_thread() is self._thread:
            raise JobQueueError("SyncQueue methods cannot be called from its own loop thread")
        future = asyncio.run_coroutine_threadsafe(call(self._queue), loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise JobQueueError("the SyncQueue was closed while this call was running") from None
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: do not leave the call running on the loop
            raise

    def enqueue(self, job_id: str, payload: P, **options: Unpack[JobOptions]) -> EnqueueResult[R]:
        """``Queue.enqueue``, blocking."""
        return self._run(lambda queue: queue.enqueue(job_id, payload, **options))

    def enqueue_many(
        self, jobs: Iterable[tuple[str, P]], **options: Unpack[JobOptions]
    ) -> list[EnqueueResult[R]]:
        """``Queue.enqueue_many``, blocking."""
        return self._run(lambda queue: queue.enqueue_many(list(jobs), **options))

    def enqueue_and_wait(
        self, job_id: str, payload: P, *, timeout: Duration = 30.0, **options: Unpack[JobOptions]
    ) -> R:
        """``Queue.enqueue_and_wait``, blocking: the result, or the same exceptions."""
        return self._run(lambda queue: queue.enqueue_and_wait(job_id, payload, timeout=timeout, **options))

    def wait(self, job_id: str, *, timeout: Duration = 30.0) -> R:
        """``Queue.wait``, blocking: the result of an existing job."""
        return self._run(lambda queue: queue.wait(job_id, timeout=timeout))

    def cancel(self, job_id: str) -> CancelResult:
        """``Queue.cancel``, blocking."""
        return self._run(lambda queue: queue.cancel(job_id))

    def abort(self, job_id: str) -> CancelResult:
        """``Queue.abort``, blocking."""
        return self._run(lambda queue: queue.abort(job_id))

    def get_status(self, job_id: str) -> JobStatus[R] | None:
        """``Queue.get_status``, blocking."""
        return self._run(lambda queue: queue.get_status(job_id))

    def get_result(self, job_id: str) -> R | None:
        """``Queue.get_result``, blocking."""
        return self._run(lambda queue: queue.get_result(job_id))

    def update_result_ttl(self, job_id: str, ttl: Duration) -> UpdateTtlResult:
        """``Queue.update_result_ttl``, blocking."""
        return self._run(lambda queue: queue.update_result_ttl(job_id, ttl))

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._loop is not None else "idle"
        return f"<SyncQueue {self.name!r} {state}>"


def _end_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Cancel what is left on ``loop``, stop it, join its thread and close it."""

    async def cancel_rest() -> None:
        await cancel_and_wait(*(task for task in asyncio.all_tasks() if task is not asyncio.current_task()))
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()  # threads a storage started with to_thread

    try:
        asyncio.run_coroutine_threadsafe(cancel_rest(), loop).result()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
