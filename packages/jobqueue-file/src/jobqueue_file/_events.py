"""The event log of a namespace: append-only files that every process publishes to.

Each event is a frame ``<length u32><crc32 u32><encode_event bytes>``; a batch
of frames goes out in one ``O_APPEND`` write, so frames from concurrent
publishers never interleave. Subscribers tail the log from its end as of
``subscribe`` and filter by channel (an event's channels follow from its
kind).

The log is a series of generations, ``events/<n>.log``. Once the current one
passes ``ROTATE_BYTES``, generation ``n + 1`` is created and ``n - 2`` deleted:
the log never holds more than about three times that. Publishers hold a
shared lock on ``locks/events`` while they pick the newest generation and
write to it, and rotation takes that lock exclusively, so once generation
``n + 1`` exists, ``n`` is complete and a reader moves on without a gap. A
reader more than two generations behind loses what was deleted (delivery is
best effort, as the contract says).
"""

from __future__ import annotations

import fcntl
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from jobqueue.storage import StorageEvent, decode_event, encode_event

from ._atomic import named, open_or_create

__all__ = ["ROTATE_BYTES", "EventLog", "EventTail"]

ROTATE_BYTES = 1 << 20
_HEADER = struct.Struct("<II")
_MAX_FRAME = 64 << 20


class EventLog:
    """Publishing side of a namespace's event log."""

    def __init__(self, events_dir: str, lock_path: str, mode: int, rotate_bytes: int = ROTATE_BYTES) -> None:
        self.directory = events_dir
        self.mode = mode
        self.lock_path = lock_path
        self.rotate_bytes = rotate_bytes
        self._generation = 0
        self._mutex = threading.Lock()
        self._lock_fd: int | None = None
        self._log_fd: int | None = None
        self.on_publish: Callable[[], None] | None = None
        """Called after every publish: wakes this process's subscribers without waiting for inotify."""

    def path(self, generation: int) -> str:
        """The file of one generation."""
        return os.path.join(self.directory, f"{generation:08d}.log")

    def newest(self) -> int:
        """The newest generation on disk (0 when there is none yet)."""
        try:
            names = os.listdir(self.directory)
        except OSError as exc:
            raise named(exc, self.directory) from exc
        return max(
            (int(name[:-4]) for name in names if name.endswith(".log") and name[:-4].isdigit()), default=0
        )

    def current(self) -> int:
        """The generation to write to (caller holds the lock)."""
        generation = self._generation
        while os.path.exists(self.path(generation + 1)):
            generation += 1
        if not os.path.exists(self.path(generation)):
            generation = self.newest()
        self._generation = generation
        return generation

    @contextmanager
    def locked(self, mode: int) -> Iterator[None]:
        """Hold the log lock (``fcntl.LOCK_SH`` to append, ``LOCK_EX`` to rotate or take a position)."""
        fd = open_or_create(self.lock_path, os.O_RDWR, self.mode)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    def publish(self, events: Sequence[StorageEvent]) -> None:
        """Append ``events`` in one write."""
        if not events:
            return
        frames = []
        for event in events:
            body = encode_event(event)
            frames.append(_HEADER.pack(len(body), zlib.crc32(body)) + body)
        data = b"".join(frames)
        # The descriptors are cached; the mutex keeps this process's threads from sharing a flock.
        with self._mutex:
            if self._lock_fd is None:
                self._lock_fd = open_or_create(self.lock_path, os.O_RDWR, self.mode)
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
            try:
                if self._log_fd is None or os.path.exists(self.path(self._generation + 1)):
                    self._close_log()
                    generation = self.current()
                    self._log_fd = open_or_create(self.path(generation), os.O_WRONLY | os.O_APPEND, self.mode)
                generation = self._generation
                try:
                    os.write(self._log_fd, data)
                    size = os.fstat(self._log_fd).st_size
                except OSError as exc:
                    raise named(exc, self.path(generation)) from exc
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        if self.on_publish is not None:
            self.on_publish()
        if size > self.rotate_bytes:
            self._rotate(generation)

    def _close_log(self) -> None:
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None

    def close(self) -> None:
        """Close the cached descriptors."""
        with self._mutex:
            self._close_log()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _rotate(self, generation: int) -> None:
        with self.locked(fcntl.LOCK_EX):
            try:
                if os.path.exists(self.path(generation + 1)):
                    return  # another process rotated it first
                os.close(open_or_create(self.path(generation + 1), os.O_WRONLY, self.mode))
                for old in range(generation - 2, -1, -1):
                    if not os.path.exists(self.path(old)):
                        break
                    os.unlink(self.path(old))
            except OSError as exc:
                raise named(exc, self.directory) from exc


class EventTail:
    """Reading side: yields the events appended after it was opened, across rotations."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._fd: int | None = None
        self._generation = 0
        self._buffer = b""

    def open(self) -> None:
        """Open the log at its current end (blocking: call from a worker thread)."""
        with self._log.locked(fcntl.LOCK_EX):
            self._generation = self._log.current()
            self._fd = self._open(self._generation, create=True)
            os.lseek(self._fd, 0, os.SEEK_END)

    def _open(self, generation: int, *, create: bool = False) -> int:
        path = self._log.path(generation)
        if create:
            return open_or_create(path, os.O_RDONLY, self._log.mode)
        try:
            return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise named(exc, path) from exc

    def close(self) -> None:
        """Close the log file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self) -> list[StorageEvent]:
        """Events appended since the last read (blocking: call from a worker thread)."""
        if self._fd is None:
            return []
        events = self._drain()
        while True:
            if os.path.exists(self._log.path(self._generation + 1)):
                events += self._drain()  # complete: the next generation exists
                self._switch(self._generation + 1)
            elif not os.path.exists(self._log.path(self._generation)):
                self._switch(self._oldest_after(self._generation))  # too far behind: skip what was deleted
            else:
                return events
            events += self._drain()

    def _switch(self, generation: int) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        self._buffer = b""
        self._generation = generation
        try:
            self._fd = self._open(generation)
        except FileNotFoundError:
            self._generation = self._oldest_after(generation)
            self._fd = self._open(self._generation, create=True)

    def _oldest_after(self, generation: int) -> int:
        try:
            names = os.listdir(self._log.directory)
        except OSError as exc:
            raise named(exc, self._log.directory) from exc
        later = [int(name[:-4]) for name in names if name.endswith(".log") and name[:-4].isdigit()]
        later = [number for number in later if number > generation]
        return min(later, default=self._log.newest())

    def _drain(self) -> list[StorageEvent]:
        assert self._fd is not None
        while chunk := os.read(self._fd, 1 << 16):
            self._buffer += chunk
        events: list[StorageEvent] = []
        view = self._buffer
        offset = 0
        while len(view) - offset >= _HEADER.size:
            length, crc = _HEADER.unpack_from(view, offset)
            if length > _MAX_FRAME:
                offset = len(view)  # garbage: resynchronise at the end
                break
            end = offset + _HEADER.size + length
            if end > len(view):
                break  # a frame still being written
            body = view[offset + _HEADER.size : end]
            offset = end
            if zlib.crc32(body) == crc:
                events.append(decode_event(body))
        self._buffer = view[offset:]
        return events
