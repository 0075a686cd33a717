"""The event log of a namespace: one append-only file that every process publishes to.

Each event is a frame ``<length u32><crc32 u32><encode_event bytes>``; a batch
of frames goes out in one ``O_APPEND`` write, so frames from concurrent
publishers never interleave. Subscribers tail the file from its end as of
``subscribe`` and filter by channel (an event's channels follow from its
kind). When the log passes ``ROTATE_BYTES`` it is renamed to ``log.1``
(replacing the previous one): the log never holds more than about twice
that. Publishers hold a shared lock on ``locks/events`` while they write
and rotation takes it exclusively, so once a reader sees the rename, the
old file is complete and it can switch to the new one without a gap.
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from jobqueue import StorageEvent, decode_event, encode_event

from ._atomic import named

__all__ = ["ROTATE_BYTES", "EventLog", "EventTail"]

ROTATE_BYTES = 1 << 20
_HEADER = struct.Struct("<II")
_MAX_FRAME = 64 << 20


class EventLog:
    """Publishing side of a namespace's event log."""

    def __init__(self, events_dir: str, lock_path: str, rotate_bytes: int = ROTATE_BYTES) -> None:
        self.path = os.path.join(events_dir, "log")
        self.lock_path = lock_path
        self.rotate_bytes = rotate_bytes

    @contextmanager
    def locked(self, mode: int) -> Iterator[None]:
        """Hold the log lock (``fcntl.LOCK_SH`` to append, ``LOCK_EX`` to rotate or take a position)."""
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise named(exc, self.lock_path) from exc
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
        with self.locked(fcntl.LOCK_SH):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    os.write(fd, data)
                    size = os.fstat(fd).st_size
                finally:
                    os.close(fd)
            except OSError as exc:
                raise named(exc, self.path) from exc
        if size > self.rotate_bytes:
            self._rotate()

    def _rotate(self) -> None:
        with self.locked(fcntl.LOCK_EX):
            try:
                if os.stat(self.path).st_size > self.rotate_bytes:
                    os.replace(self.path, self.path + ".1")
            except FileNotFoundError:
                pass  # another process rotated it first
            except OSError as exc:
                raise named(exc, self.path) from exc


class EventTail:
    """Reading side: yields the events appended after it was opened, across rotations."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._fd: int | None = None
        self._buffer = b""

    def open(self) -> None:
        """Open the log at its current end (blocking: call from a worker thread)."""
        with self._log.locked(fcntl.LOCK_EX):
            self._fd = self._open_log()
            os.lseek(self._fd, 0, os.SEEK_END)

    def _open_log(self) -> int:
        try:
            return os.open(self._log.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise named(exc, self._log.path) from exc

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
        if self._rotated():
            events += self._drain()  # the old file is complete once it was renamed
            os.close(self._fd)
            self._fd = self._open_log()
            self._buffer = b""
            events += self._drain()
        return events

    def _rotated(self) -> bool:
        assert self._fd is not None
        try:
            current = os.stat(self._log.path)
        except FileNotFoundError:
            return True
        mine = os.fstat(self._fd)
        return (current.st_ino, current.st_dev) != (mine.st_ino, mine.st_dev)

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
