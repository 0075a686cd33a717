"""OS file locks: job lock stripes (read-modify-write of records) and TTL leader locks.

``flock`` locks belong to an open file description, so two threads of one
process sharing a descriptor would not exclude each other: each stripe pairs
a ``threading.Lock`` with its own descriptor. A lock dies with its process,
so a ``kill -9`` never leaves a job locked.
"""

from __future__ import annotations

import fcntl
import os
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import msgpack
from jobqueue.storage import rules

from ._atomic import named, open_or_create

__all__ = ["BUSY_RETRY_MS", "StripeLocks", "acquire_leader", "release_leader"]

_STRIPES = 64

BUSY_RETRY_MS = 100
"""How soon a background pass (recovery, sweep, repair) comes back for a job whose lock it found taken.

Those passes skip a busy stripe (``try_hold``) rather than wait: its holder
may be a process frozen mid-change (SIGSTOP, a paused VM) for any length of
time, and waiting would hold up every other job of the pass."""


class StripeLocks:
    """One exclusive lock per job key, shared across threads and processes, over 64 lock files."""

    def __init__(self, directory: str, mode: int) -> None:
        self._directory = directory
        self._mode = mode
        self._threads = [threading.Lock() for _ in range(_STRIPES)]
        self._fds: list[int | None] = [None] * _STRIPES

    def _fd(self, stripe: int) -> int:
        fd = self._fds[stripe]
        if fd is None:
            fd = open_or_create(os.path.join(self._directory, f"job-{stripe:02d}"), os.O_RDWR, self._mode)
            self._fds[stripe] = fd
        return fd

    @staticmethod
    def stripe(key: str) -> int:
        """The stripe of ``key``: keys of one stripe share a lock."""
        return zlib.crc32(key.encode()) % _STRIPES

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold the lock of ``key`` (blocking: call from a worker thread)."""
        stripe = self.stripe(key)
        with self._threads[stripe]:
            fd = self._fd(stripe)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    @contextmanager
    def try_hold(self, key: str) -> Iterator[bool]:
        """Hold the lock of ``key`` if it is free; yield whether it is held (never waits)."""
        stripe = self.stripe(key)
        if not self._threads[stripe].acquire(blocking=False):
            yield False
            return
        try:
            fd = self._fd(stripe)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._threads[stripe].release()

    def close(self) -> None:
        """Close the lock files (locks are released by then)."""
        for stripe, fd in enumerate(self._fds):
            if fd is not None:
                with self._threads[stripe]:
                    os.close(fd)
                    self._fds[stripe] = None


@contextmanager
def _locked_file(path: str, mode: int) -> Iterator[int]:
    fd = open_or_create(path, os.O_RDWR, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _read_holder(fd: int) -> tuple[str, int] | None:
    data = os.pread(fd, 4096, 0)
    try:
        owner, expires_at = msgpack.unpackb(data, raw=False)
    except Exception:
        return None  # empty, or cut short by a crash: nobody holds it
    if not isinstance(owner, str) or not isinstance(expires_at, int):
        return None
    return owner, expires_at


def acquire_leader(path: str, owner: str, ttl_ms: int, now: int, mode: int) -> bool:
    """Take or renew the lock file at ``path`` for ``owner``; False when another live owner holds it."""
    with _locked_file(path, mode) as fd:
        holder = _read_holder(fd)
        if holder is not None and holder[0] != owner and holder[1] > now:
            return False
        data = msgpack.packb([owner, rules.later(now, ttl_ms)], use_bin_type=True)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError as exc:
            raise named(exc, path) from exc
        return True


def release_leader(path: str, owner: str, now: int, mode: int) -> bool:
    """Release the lock file at ``path`` if ``owner`` holds it; True when it was still live."""
    if not os.path.lexists(path):
        return False
    with _locked_file(path, mode) as fd:
        holder = _read_holder(fd)
        if holder is None or holder[0] != owner:
            return False
        os.ftruncate(fd, 0)
        return holder[1] > now
