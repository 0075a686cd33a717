"""Spare record files: a record write reuses the file its previous write replaced, instead of creating one.

Creating a file costs a file system far more than rewriting one: on the
ext4 disk of the benchmarks (no journal, where every new inode is checked
against recently deleted ones), a create took 0.5 to 0.9 ms of CPU, a
rewrite in place 0.03 ms. A job's record is written three times in its
life, so a record write goes to a spare file of this process
(``jobs/.tmp-<pid>-spare-<n>``), is flushed, and is swapped with the record
by ``exchange`` (``renameat2(RENAME_EXCHANGE)``): the
record's name holds the new content at once, whole, and the spare's name
now holds the old record, which a later write reuses. A file is created
only when no spare is ready (the first writes of a process, new jobs).

Reuse comes after a flush: a spare is reused only once the directory was
fsynced after the swap that made it a spare. Before that, a power cut could
bring back the record's old name pointing at it, and its new content would
stand in for the record. The fsyncs after an enqueue or a finish do that;
otherwise the pool flushes the directory itself once ``_FLUSH_BATCH``
spares wait (one directory fsync for that many writes). A process keeps at
most ``_MAX_SPARES`` spares; it deletes them once it has written no record
for ``IDLE_SECONDS`` (the sweep calls ``trim``) and when it closes the
namespace. Those of a dead process go with its other temp files.

A reader may open a record just before it is replaced and read it while it
is rewritten as a spare: ``read_settled`` keeps a read only if the name
still holds the inode afterwards, and a record carries a checksum.

Where ``renameat2`` is missing (not Linux) or the file system cannot
exchange, every write creates a temp file and renames it over the record.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from ._atomic import (
    SPARE_MARK,
    TEMP_PREFIX,
    exchange,
    named,
    rename_if_exists,
    unlink_if_exists,
    write_atomic,
)

__all__ = ["Spares"]

_FLUSH_BATCH = 64
"""Spares that wait for a flush before the pool flushes the directory itself."""
_MAX_SPARES = 256
"""Spares kept per process and directory; beyond that a replaced record is deleted."""
IDLE_SECONDS = 1.0
"""A process that wrote no record for this long gives its spares back (``trim``)."""
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)
"""The data and the size, not the times: a drain went from 920-1030 to about 1100 jobs/s with it."""


class Spares:
    """Atomic record writes in ``directory``, reusing this process's spare files there (thread-safe)."""

    def __init__(self, directory: str, mode: int, *, durable: bool, flush: Callable[[], None]) -> None:
        self.directory = directory
        self.mode = mode
        self.durable = durable
        self._flush = flush
        """Fsyncs ``directory`` (whatever ``durable`` says)."""
        self._ready: list[str] = []
        self._waiting: list[str] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._made = 0
        self._exchanges = True
        self._written_at = 0.0

    def write(self, path: str, data: bytes, *, new: bool = False) -> None:
        """Replace ``path`` (in ``directory``) with ``data``: a reader sees the old or the new content, whole.

        ``new``: the caller found no record there, so there is nothing to swap with.
        """
        self._written_at = time.monotonic()
        if not self._exchanges:
            write_atomic(path, data, durable=self.durable, mode=self.mode)
            return
        spare, fd = self._open_spare()
        try:
            try:
                view = memoryview(data)
                offset = 0
                while offset < len(data):
                    offset += os.pwrite(fd, view[offset:], offset)
                os.ftruncate(fd, len(data))
                if self.durable:
                    _datasync(fd)
            finally:
                os.close(fd)
            swapped = not new and exchange(spare, path)
        except NotImplementedError:
            self._exchanges = False
            self._replace(spare, path)
            return
        except OSError as exc:
            unlink_if_exists(spare)
            raise named(exc, path) from exc
        if swapped:
            self._keep(spare)
        else:  # a new record: nothing to swap with
            self._replace(spare, path)

    def adopt(self, path: str) -> None:
        """Delete the record ``path``, keeping its file as a spare when the pool has room."""
        spare = self._new_name() if self._exchanges and self._room() else None
        if spare is None or not rename_if_exists(path, spare):
            unlink_if_exists(path)
            return
        self._keep(spare)

    def waiting(self) -> list[str]:
        """Take the spares that wait for a flush: the caller fsyncs the directory, then calls ``flushed``."""
        with self._lock:
            waiting, self._waiting = self._waiting, []
        return waiting

    def flushed(self, spares: list[str]) -> None:
        """The directory was fsynced after ``spares`` became spares: they may be reused."""
        with self._lock:
            self._ready += spares

    def trim(self) -> None:
        """Delete this process's spares if it wrote no record for ``IDLE_SECONDS``."""
        if time.monotonic() - self._written_at >= IDLE_SECONDS:
            self.close()

    def close(self) -> None:
        """Delete this process's spares."""
        with self._lock:
            spares = self._ready + self._waiting if self._pid == os.getpid() else []
            self._ready, self._waiting = [], []
        for spare in spares:
            unlink_if_exists(spare)

    def _open_spare(self) -> tuple[str, int]:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's spares are the parent's
                self._pid, self._ready, self._waiting = os.getpid(), [], []
            flush = not self._ready and len(self._waiting) >= _FLUSH_BATCH
        if flush:
            waiting = self.waiting()
            self._flush()
            self.flushed(waiting)
        with self._lock:
            spare = self._ready.pop() if self._ready else None
        if spare is not None:
            try:
                return spare, os.open(spare, os.O_WRONLY | _NOFOLLOW)
            except FileNotFoundError:
                pass  # removed by hand: make another
            except OSError as exc:
                raise named(exc, spare) from exc
        spare = self._new_name()
        try:
            fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, self.mode)
        except OSError as exc:
            raise named(exc, spare) from exc
        try:
            os.fchmod(fd, self.mode)  # the umask narrowed it; the mode asked for wins
        except OSError as exc:
            os.close(fd)
            unlink_if_exists(spare)
            raise named(exc, spare) from exc
        return spare, fd

    def _new_name(self) -> str:
        with self._lock:
            self._made += 1
            made = self._made
        # Random too: a dead process with the same pid (a container's, say) may have left its spares.
        name = f"{TEMP_PREFIX}{os.getpid()}{SPARE_MARK}{made}-{os.urandom(4).hex()}"
        return os.path.join(self.directory, name)

    def _room(self) -> bool:
        with self._lock:
            return len(self._ready) + len(self._waiting) < _MAX_SPARES

    def _keep(self, spare: str) -> None:
        with self._lock:
            if self._pid == os.getpid() and len(self._ready) + len(self._waiting) < _MAX_SPARES:
                self._waiting.append(spare)
                return
        unlink_if_exists(spare)

    def _replace(self, spare: str, path: str) -> None:
        try:
            os.replace(spare, path)  # replaces a symlink at ``path`` itself, never its target
        except OSError as exc:
            unlink_if_exists(spare)
            raise named(exc, path) from exc
