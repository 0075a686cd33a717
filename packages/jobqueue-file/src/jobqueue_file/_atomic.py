"""Atomic file operations: nothing is ever half-written, whatever kills the process.

A file is written to a temp file in the same directory (so the rename stays
on one file system), flushed with ``fsync`` and renamed over its final name.
``durable=False`` skips the fsyncs: a crash of the process still leaves
nothing half-written, only a power loss can lose the last writes.

Every ``OSError`` leaving this module names the path it concerns.
"""

from __future__ import annotations

import errno
import os
import time

__all__ = [
    "TEMP_PREFIX",
    "clean_temp_files",
    "create_empty",
    "fsync_dir",
    "named",
    "read_bytes",
    "rename_if_exists",
    "unlink_if_exists",
    "write_atomic",
]

TEMP_PREFIX = ".tmp-"
_STALE_TEMP_SECONDS = 3600


def named(exc: OSError, path: str) -> OSError:
    """``exc`` with ``path`` as its filename (a new error when it had none)."""
    if exc.filename is not None:
        return exc
    return type(exc)(exc.errno, exc.strerror, path)


def write_atomic(path: str, data: bytes, *, durable: bool, sync_dir: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically; ``sync_dir`` also makes the rename durable."""
    directory, base = os.path.split(path)
    temp = os.path.join(directory, f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}-{base[:40]}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as exc:
        unlink_if_exists(temp)
        raise named(exc, path) from exc
    if durable and sync_dir:
        fsync_dir(directory)


def create_empty(path: str) -> None:
    """Create an empty file; ``FileExistsError`` when it exists."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
    except OSError as exc:
        raise named(exc, path) from exc


def fsync_dir(directory: str) -> None:
    """Flush a directory, so that renames and creations in it survive a power loss."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise named(exc, directory) from exc


def read_bytes(path: str) -> bytes | None:
    """The content of ``path``; None when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise named(exc, path) from exc
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise named(exc, path) from exc
    finally:
        os.close(fd)


def unlink_if_exists(path: str) -> bool:
    """Remove ``path``; False when it was already gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise named(exc, path) from exc
    return True


def rename_if_exists(source: str, target: str) -> bool:
    """Rename ``source`` to ``target`` atomically; False when ``source`` does not exist."""
    try:
        os.rename(source, target)
    except FileNotFoundError as exc:
        if os.path.lexists(source):
            raise named(exc, target) from exc  # the target's directory is missing, not the source
        return False
    except OSError as exc:
        raise named(exc, source) from exc
    return True


def clean_temp_files(directory: str) -> int:
    """Remove temp files left by dead processes (or older than an hour); return how many."""
    removed = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    now = time.time()
    for name in names:
        if not name.startswith(TEMP_PREFIX):
            continue
        path = os.path.join(directory, name)
        pid_text = name[len(TEMP_PREFIX) :].partition("-")[0]
        try:
            stale = not _alive(int(pid_text)) or now - os.stat(path).st_mtime > _STALE_TEMP_SECONDS
        except (ValueError, FileNotFoundError):
            stale = True
        if stale and unlink_if_exists(path):
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError as exc:
        return exc.errno != errno.ESRCH
    return True
