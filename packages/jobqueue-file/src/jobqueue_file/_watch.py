"""Event-driven waiting on directories, across processes, through inotify read directly (Linux).

One ``DirWatcher`` per namespace and process watches a few directories (not
recursively) from one thread. Each directory has a generation counter that
goes up on every change seen there (or announced by this process through
``bump``). A waiter snapshots the counters, looks for work, and then waits
for any counter to move, so a change between its look and its wait is never
missed.

The thread blocks in ``poll`` on an inotify descriptor and moves the
counters as soon as the kernel reports an event: nothing is debounced, so a
waiter wakes well under a millisecond after a file is created, renamed in or
appended to by another process (``watchfiles`` batched changes for 10 to
30 ms, which was the whole request/response latency). Where inotify is
missing (another OS, no instances left) the thread bumps every directory
every ``POLL_FALLBACK_MS`` instead, and waiters re-check.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import select
import struct
import threading
from collections.abc import Sequence

__all__ = ["DirWatcher"]

POLL_FALLBACK_MS = 50
_IN_MODIFY, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x80, 0x100
_IN_ONLYDIR, _IN_CLOEXEC, _IN_NONBLOCK = 0x01000000, 0o2000000, 0o4000
# An entry created or renamed in, an event appended: enough to wake every waiter, and no more.
_MASK = _IN_MODIFY | _IN_MOVED_TO | _IN_CREATE | _IN_ONLYDIR
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then ``len`` bytes of name
_log = logging.getLogger("jobqueue.file")

Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


def _inotify(directories: Sequence[str]) -> tuple[int, dict[int, str]]:
    """An inotify descriptor watching ``directories``, and watch descriptor -> directory."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name, use_errno=True)
    fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    watches: dict[int, str] = {}
    try:
        for path in directories:
            wd = libc.inotify_add_watch(fd, os.fsencode(path), _MASK)
            if wd < 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code), path)
            watches[wd] = path
    except BaseException:
        os.close(fd)
        raise
    return fd, watches


class DirWatcher:
    """Generation counters for directories, moved by inotify events and by ``bump``."""

    def __init__(self, directories: Sequence[str]) -> None:
        self._dirs = list(directories)
        self._generations = dict.fromkeys(self._dirs, 0)
        self._waiters: dict[str, list[Waiter]] = {path: [] for path in self._dirs}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_pipe: tuple[int, int] | None = None

    @property
    def running(self) -> bool:
        """True once ``start`` has run (and until ``stop``)."""
        return self._thread is not None

    def start(self) -> None:
        """Set up the watches and start the thread (blocking: call from a worker thread)."""
        with self._lock:
            if self._thread is not None:
                return
            try:
                fd, watches = _inotify(self._dirs)
            except (OSError, AttributeError, TypeError) as exc:  # no inotify here: poll instead
                _log.warning("inotify unavailable (%s); watching %s by polling", exc, self._dirs[0])
                fd, watches = -1, {}
            self._stop_pipe = os.pipe()
            self._thread = threading.Thread(
                target=self._run,
                args=(fd, watches, self._stop_pipe[0]),
                name="jobqueue-file-watch",
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and release the watches (blocking: call from a worker thread)."""
        with self._lock:
            thread, self._thread = self._thread, None
            pipe, self._stop_pipe = self._stop_pipe, None
        if pipe is not None:
            os.write(pipe[1], b"x")
        if thread is not None:
            thread.join()
        if pipe is not None:
            os.close(pipe[0])
            os.close(pipe[1])
        self.bump(*self._dirs)  # waiters re-check and see that the storage closed

    def _run(self, fd: int, watches: dict[int, str], stop_fd: int) -> None:
        poller = select.poll()
        poller.register(stop_fd, select.POLLIN)
        if fd >= 0:
            poller.register(fd, select.POLLIN)
        try:
            while True:
                ready = poller.poll(None if fd >= 0 else POLL_FALLBACK_MS)
                if any(ready_fd == stop_fd for ready_fd, _ in ready):
                    return
                if fd < 0:
                    self._changed(set(self._dirs))
                    continue
                changed = self._read(fd, watches)
                if changed:
                    self._changed(changed)
        except Exception:
            _log.exception("file watcher failed; waiters fall back to slow polling")
        finally:
            if fd >= 0:
                os.close(fd)

    @staticmethod
    def _read(fd: int, watches: dict[int, str]) -> set[str]:
        """Drain the inotify descriptor; the directories that saw an event."""
        changed: set[str] = set()
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                return changed
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            offset = 0
            while offset + _EVENT.size <= len(data):
                wd, _, _, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if wd == -1:  # IN_Q_OVERFLOW: events were lost, so everything may have changed
                    changed.update(watches.values())
                elif (path := watches.get(wd)) is not None:
                    changed.add(path)

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
