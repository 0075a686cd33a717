"""Event-driven waiting on directories, across processes, through ``watchfiles`` (inotify on Linux).

One ``DirWatcher`` per namespace and process watches a few directories (not
recursively) from one thread. Each directory has a generation counter that
goes up on every change seen there (or announced by this process through
``bump``). A waiter snapshots the counters, looks for work, and then waits
for any counter to move, so a change between its look and its wait is never
missed. ``watchfiles`` checks for changes every ``STEP_MS`` and reports a
burst once it has been quiet for a step (``DEBOUNCE_MS`` at most), so a
waiter wakes 10 to 30 ms after a change in another process; the thread
costs next to nothing while idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Sequence

from watchfiles._rust_notify import RustNotify

__all__ = ["DirWatcher"]

STEP_MS = 10
DEBOUNCE_MS = 30
POLL_FALLBACK_MS = 50
_RUST_TIMEOUT_MS = 5_000
_log = logging.getLogger("jobqueue.file")

Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class DirWatcher:
    """Generation counters for directories, moved by file-system events and by ``bump``."""

    def __init__(self, directories: Sequence[str]) -> None:
        self._dirs = list(directories)
        self._generations = dict.fromkeys(self._dirs, 0)
        self._aliases = {path: path for path in self._dirs}  # reported path -> watched path
        self._waiters: dict[str, list[Waiter]] = {path: [] for path in self._dirs}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._notify: RustNotify | None = None

    @property
    def running(self) -> bool:
        """True once ``start`` has run (and until ``stop``)."""
        return self._thread is not None

    def start(self) -> None:
        """Set up the watches and start the thread (blocking: call from a worker thread)."""
        with self._lock:
            if self._thread is not None:
                return
            self._aliases.update((os.path.realpath(path), path) for path in self._dirs)
            try:
                self._notify = RustNotify(self._dirs, False, False, 300, False, False)
            except (OSError, RuntimeError) as exc:  # e.g. out of inotify instances: poll instead
                _log.warning("inotify unavailable (%s); watching %s by polling", exc, self._dirs[0])
                self._notify = RustNotify(self._dirs, False, True, POLL_FALLBACK_MS, False, False)
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="jobqueue-file-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and release the watches (blocking: call from a worker thread)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join()
        if self._notify is not None:
            self._notify.close()
            self._notify = None
        self.bump(*self._dirs)  # waiters re-check and see that the storage closed

    def _run(self) -> None:
        notify = self._notify
        assert notify is not None
        while not self._stop.is_set():
            try:
                changes = notify.watch(DEBOUNCE_MS, STEP_MS, _RUST_TIMEOUT_MS, self._stop)
            except Exception:
                _log.exception("file watcher failed; waiters fall back to slow polling")
                return
            if isinstance(changes, set):
                self._changed({self._aliases.get(os.path.dirname(path), "") for _, path in changes})

    def snapshot(self, *directories: str) -> tuple[int, ...]:
        """The current generations of ``directories``."""
        with self._lock:
            return tuple(self._generations[path] for path in directories)

    def bump(self, *directories: str) -> None:
        """Announce a change made by this process (wakes local waiters at once)."""
        self._changed(set(directories))

    def _changed(self, directories: set[str]) -> None:
        woken: list[Waiter] = []
        with self._lock:
            for path in directories:
                if path in self._generations:
                    self._generations[path] += 1
                    woken += self._waiters[path]
                    self._waiters[path] = []
        for loop, future in woken:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there any more
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self, directories: Sequence[str], since: tuple[int, ...], timeout: float) -> None:
        """Return when a generation moved past ``since`` or after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        paths = list(directories)
        with self._lock:
            if any(self._generations[path] != seen for path, seen in zip(paths, since, strict=True)):
                return
            for path in paths:
                self._waiters[path].append((loop, future))
        try:
            await asyncio.wait((future,), timeout=max(timeout, 0))
        finally:
            future.cancel()
            with self._lock:
                for path in paths:
                    waiters = self._waiters[path]
                    if (loop, future) in waiters:
                        waiters.remove((loop, future))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
