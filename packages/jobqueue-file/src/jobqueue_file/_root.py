"""What every view of one ``FileStorage`` shares, and the operations that run whole in a worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from jobqueue import DEFAULT_NAMESPACE, Claim, JobState, now_ms, parse_query
from jobqueue.storage import redact_url

from . import _names as names
from ._admin import Space
from ._layout import Layout
from ._locks import acquire_leader, release_leader
from ._watch import DirWatcher

__all__ = [
    "Root",
    "parse_url",
    "abort",
    "acquire",
    "close_all",
    "get_many",
    "namespaces",
    "release",
    "sweep_root",
    "take",
]

CLEANER_LOCK = "cleaner.lock"
CLEANER_LOCK_MIN_MS = 10_000
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def parse_url(url: str) -> tuple[str, str, bool]:
    """``file:///path?durable=false`` -> (path, namespace, durable); ``ValueError`` naming the problem."""
    if not isinstance(url, str):
        raise TypeError(f"storage url must be a str, not {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        raise ValueError(f"not a file:// url: {redact_url(url)!r}")
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file:// urls take no host (use file:///absolute/path), got {redact_url(url)!r}")
    path = unquote(parts.path)
    if not path or path == "/":
        raise ValueError(f"file:// url needs a directory path, got {redact_url(url)!r}")
    options = parse_query(url, {"durable"})
    durable = options.get("durable", "true").lower()
    if durable not in _TRUE | _FALSE:
        raise ValueError(f"durable must be true or false in {redact_url(url)!r}, got {options['durable']!r}")
    return path, DEFAULT_NAMESPACE, durable in _TRUE


class Root:
    """What every view of one ``FileStorage`` shares: the directory, connections count, caches."""

    def __init__(self, path: str, durable: bool, cleanup_interval: float) -> None:
        self.path = path
        self.durable = durable
        self.cleanup_interval = cleanup_interval
        self.refs = 0
        self.spaces: dict[str, Space] = {}
        self.watchers: dict[str, DirWatcher] = {}
        self.cleaner: asyncio.Task[None] | None = None
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"
        self.guard = asyncio.Lock()

    def open_space(self, name: str) -> Space:
        """Create (and repair) a namespace's directory (blocking: runs in a worker thread)."""
        os.makedirs(self.path, exist_ok=True)
        space = Space(Layout(self.path, name), self.durable)
        try:
            space.layout.ensure(durable=self.durable)
            space.repair()
        except BaseException:
            space.close()
            raise
        return space


# Thread-side helpers: each runs whole in one worker thread.


def take(space: Space, worker_id: str, lease_ms: int, limit: int) -> tuple[list[Claim], int | None]:
    next_due = space.promote_due()
    return space.claim(worker_id, lease_ms, limit), next_due


def abort(space: Space, job_id: str) -> JobState | None:
    return space.cancel(job_id, abort=True)


def get_many(space: Space, job_ids: list[str]) -> list[Any]:
    return [space.get(job_id) for job_id in job_ids]


def _lock_path(space: Space, key: str) -> str:
    return os.path.join(space.layout.locks, "leader-" + names.encode_key(key))


def acquire(space: Space, key: str, owner: str, ttl_ms: int) -> bool:
    return acquire_leader(_lock_path(space, key), owner, ttl_ms, now_ms())


def release(space: Space, key: str, owner: str) -> bool:
    return release_leader(_lock_path(space, key), owner, now_ms())


def _namespace_dirs(root: Root) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for entry in os.scandir(root.path):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        try:
            with open(os.path.join(entry.path, "namespace"), "rb") as file:
                found.append((entry.name, file.read().decode("utf-8")))
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
            continue
    return found


def namespaces(root: Root) -> list[str]:
    found: list[str] = []
    for _, name in _namespace_dirs(root):
        with _space_of(root, name) as space:
            if not space.is_empty():
                found.append(name)
    return sorted(found)


@contextlib.contextmanager
def _space_of(root: Root, name: str) -> Iterator[Space]:
    """The open space of ``name``, or a temporary one whose lock files are closed afterwards."""
    space = root.spaces.get(name)
    if space is not None:
        yield space
        return
    space = Space(Layout(root.path, name), root.durable)
    try:
        yield space
    finally:
        space.close()


def sweep_root(root: Root) -> None:
    lock = os.path.join(root.path, CLEANER_LOCK)
    # Generous, so a busy leader keeps the role; a dead one is replaced within CLEANER_LOCK_MIN_MS.
    ttl_ms = max(int(root.cleanup_interval * 3000), CLEANER_LOCK_MIN_MS)
    if not acquire_leader(lock, root.owner, ttl_ms, now_ms()):
        return
    for _, name in _namespace_dirs(root):
        with _space_of(root, name) as space:
            space.sweep()


def close_all(root: Root, watchers: list[DirWatcher], spaces: list[Space]) -> None:
    for watcher in watchers:
        watcher.stop()
    for space in spaces:
        space.close()
    with contextlib.suppress(OSError):
        release_leader(os.path.join(root.path, CLEANER_LOCK), root.owner, now_ms())
