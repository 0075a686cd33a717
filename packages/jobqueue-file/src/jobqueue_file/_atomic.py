"""Atomic, symlink-proof file operations: nothing is ever half-written, nothing outside the root is touched.

A file is written to a temp file in the same directory (so the rename stays
on one file system), flushed with ``fsync`` and renamed over its final name
(records go through ``_spares``, which reuses files and swaps them in with
``exchange``).
``durable=False`` skips the fsyncs: a crash of the process still leaves
nothing half-written, only a power loss can lose the last writes.

Every open uses ``O_NOFOLLOW``: a symlink planted where the storage expects a
file fails with ``ELOOP`` instead of being followed. ``rename`` and
``unlink`` act on a link itself, never on its target. Directories are
checked with ``lstat`` when they are created or first used, so a symlinked
directory is refused too.

Files are created with the storage's ``mode`` (default ``0o600``) and
directories with the matching search bits (``dir_mode``); both are set with
``fchmod``/``chmod`` after creation, so the process umask does not narrow a
mode that was asked for explicitly.

Every ``OSError`` leaving this module names the path it concerns.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import time
from collections.abc import Callable
from typing import cast

__all__ = [
    "DEFAULT_MODE",
    "TEMP_PREFIX",
    "check_dir",
    "check_mode",
    "clean_temp_files",
    "create_empty",
    "dir_mode",
    "ensure_dir",
    "exchange",
    "fsync_dir",
    "named",
    "open_dir",
    "open_or_create",
    "read_bytes",
    "read_settled",
    "rename_if_exists",
    "unlink_if_exists",
    "write_atomic",
]

DEFAULT_MODE = 0o600
TEMP_PREFIX = ".tmp-"
SPARE_MARK = "-spare-"
"""In a temp file's name: a spare record file (``_spares``), kept while its process lives."""
_STALE_TEMP_SECONDS = 3600
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_READ_ATTEMPTS = 20


def check_mode(mode: object) -> int:
    """Check a file mode: an int within ``0o777`` that lets the owner read and write.

    Raises:
        TypeError: not an int.
        ValueError: outside ``0o000..0o777``, or without owner read/write.
    """
    if isinstance(mode, bool) or not isinstance(mode, int):
        raise TypeError(f"mode must be an int such as 0o600, not {type(mode).__name__}")
    if not 0 <= mode <= 0o777:
        raise ValueError(f"mode must be a permission mode within 0o777, got {oct(mode)}")
    if mode & 0o600 != 0o600:
        raise ValueError(f"mode must let the owner read and write (0o600), got {oct(mode)}")
    return mode


def dir_mode(mode: int) -> int:
    """The directory mode matching a file mode: search (x) wherever read is granted."""
    return mode | ((mode & 0o444) >> 2)


def named(exc: OSError, path: str) -> OSError:
    """``exc`` with ``path`` as its filename (a new error when it had none)."""
    if exc.filename is not None:
        return exc
    return type(exc)(exc.errno, exc.strerror, path)


def _symlink_error(path: str) -> OSError:
    return OSError(errno.ELOOP, "a symbolic link where the storage expects a directory", path)


def check_dir(path: str) -> None:
    """Raise unless ``path`` is a real directory (not a symlink to one)."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise named(exc, path) from exc
    if stat.S_ISLNK(info.st_mode):
        raise _symlink_error(path)
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)


def ensure_dir(path: str, mode: int) -> None:
    """Create directory ``path`` with ``dir_mode(mode)`` unless it exists; refuse a symlink or a file there.

    Safe against concurrent creators (another process may create it first).
    """
    wanted = dir_mode(mode)
    for attempt in range(3):
        try:
            os.mkdir(path, wanted)
        except FileExistsError:
            break
        except OSError as exc:
            raise named(exc, path) from exc
        try:
            os.chmod(path, wanted, follow_symlinks=False)
        except FileNotFoundError as exc:
            # An idle worker's directory, removed by another process's sweep right after the mkdir.
            if attempt == 2:
                raise named(exc, path) from exc
            continue
        except OSError as exc:
            raise named(exc, path) from exc
        return
    check_dir(path)


def open_dir(path: str) -> int:
    """A descriptor on directory ``path`` (refused when it is a symlink)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and os.path.islink(path)):
            raise _symlink_error(path) from exc
        raise named(exc, path) from exc


def open_or_create(path: str, flags: int, mode: int) -> int:
    """Open ``path`` (never through a symlink), creating it with exactly ``mode`` when missing."""
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
    except FileExistsError:
        try:
            return os.open(path, flags | _NOFOLLOW)
        except FileNotFoundError:  # deleted in between (a rotated log, say): create it after all
            return open_or_create(path, flags, mode)
        except OSError as exc:
            raise named(exc, path) from exc
    except OSError as exc:
        raise named(exc, path) from exc
    try:
        os.fchmod(fd, mode)  # the umask narrowed it; the mode asked for wins
    except OSError as exc:
        os.close(fd)
        raise named(exc, path) from exc
    return fd


def write_atomic(path: str, data: bytes, *, durable: bool, mode: int, sync_dir: bool = False) -> None:
    """Replace ``path`` with ``data`` atomically; ``sync_dir`` also makes the rename durable."""
    directory, base = os.path.split(path)
    temp = os.path.join(directory, f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}-{base[:40]}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)  # replaces a symlink at ``path`` itself, never its target
    except OSError as exc:
        unlink_if_exists(temp)
        raise named(exc, path) from exc
    if durable and sync_dir:
        fsync_dir(directory)


def create_empty(path: str, mode: int, *, like: str | None = None) -> None:
    """Create an empty file with ``mode``; ``FileExistsError`` when something is there.

    ``like`` names an empty file to make a hard link of instead, which costs
    far less than a new inode; a new file is created when linking fails
    (``like`` missing, too many links, a file system without hard links).
    """
    if like is not None:
        try:
            os.link(like, path, follow_symlinks=False)
            return
        except FileExistsError as exc:
            raise named(exc, path) from exc
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EMLINK, errno.EPERM, errno.ENOTSUP):
                raise named(exc, path) from exc
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
    except OSError as exc:
        raise named(exc, path) from exc
    try:
        os.fchmod(fd, mode)
    except OSError as exc:
        raise named(exc, path) from exc
    finally:
        os.close(fd)


def fsync_dir(directory: str) -> None:
    """Flush a directory, so that renames and creations in it survive a power loss."""
    fd = open_dir(directory)
    try:
        os.fsync(fd)
    except OSError as exc:
        raise named(exc, directory) from exc
    finally:
        os.close(fd)


def read_bytes(path: str) -> bytes | None:
    """The content of ``path``; None when it does not exist. A symlink there is an error."""
    read = _read_with_inode(path)
    return None if read is None else read[0]


def read_settled(path: str) -> bytes | None:
    """``read_bytes`` for a file that is replaced by ``exchange``.

    A replaced file's inode is reused for a later write (``_spares``), so a
    reader that opened it just before may read it while it is rewritten.
    The read counts only if ``path`` still names the inode afterwards;
    otherwise it is done again. The caller checks the content itself (a
    record carries a checksum) and reads again when it is torn.
    """
    for _ in range(_READ_ATTEMPTS):
        read = _read_with_inode(path)
        if read is None:
            return None
        try:
            now = os.lstat(path).st_ino
        except FileNotFoundError:
            continue  # deleted meanwhile: the next open says so
        except OSError as exc:
            raise named(exc, path) from exc
        if now == read[1]:
            return read[0]
    raise OSError(errno.EAGAIN, f"replaced {_READ_ATTEMPTS} times while being read", path)


def _read_with_inode(path: str) -> tuple[bytes, int] | None:
    """The content of ``path`` and the inode it was read from; None when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise named(exc, path) from exc
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks), os.fstat(fd).st_ino
    except OSError as exc:
        raise named(exc, path) from exc
    finally:
        os.close(fd)


def _load_renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # not Linux, or a libc without it
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    function.restype = ctypes.c_int
    return cast("Callable[[int, bytes, int, bytes, int], int]", function)


_renameat2 = _load_renameat2()


def exchange(source: str, target: str) -> bool:
    """Swap two files atomically (``renameat2(RENAME_EXCHANGE)``); False when ``target`` does not exist.

    Raises:
        NotImplementedError: the system or the file system cannot exchange.
        OSError: anything else, naming the path.
    """
    if _renameat2 is None:
        raise NotImplementedError("renameat2 is not available")
    if _renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        raise NotImplementedError(os.strerror(code))
    if code == errno.ENOENT and os.path.lexists(source):
        return False
    raise OSError(code, os.strerror(code), source if code == errno.ENOENT else target)


def unlink_if_exists(path: str) -> bool:
    """Remove ``path`` (a symlink itself, never its target); False when it was already gone."""
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
    if os.path.lexists(source):
        # Two names of one file (entries are links of one empty file): rename did nothing.
        unlink_if_exists(source)
    return True


def clean_temp_files(directory: str) -> int:
    """Remove temp files left by dead processes (or older than an hour, but a live process's spares); return how many."""
    removed = 0
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise named(exc, directory) from exc
    now = time.time()
    for name in names:
        if not name.startswith(TEMP_PREFIX):
            continue
        path = os.path.join(directory, name)
        pid_text = name[len(TEMP_PREFIX) :].partition("-")[0]
        try:
            alive = _alive(int(pid_text))
            stale = not alive or (
                SPARE_MARK not in name and now - os.lstat(path).st_mtime > _STALE_TEMP_SECONDS
            )
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
