"""What every view of one ``FileStorage`` shares (``Root``), the URL form, and root-wide operations.

The functions here run whole in a worker thread: opening a namespace,
finding the namespaces under the root, sweeping all of them, leader locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

from jobqueue.storage import DEFAULT_NAMESPACE, now_ms, parse_query, redact_url

from . import _names as names
from ._atomic import DEFAULT_MODE, check_mode, ensure_dir, read_bytes
from ._layout import Layout
from ._locks import acquire_leader, release_leader
from ._monitor_ops import is_empty
from ._space import Space
from ._sweep import ExpiryIndex, sweep_namespace
from ._watch import DirWatcher
from ._worker_ops import repair_processing

__all__ = [
    "Root",
    "acquire_leader_lock",
    "close_root",
    "namespaces_in_use",
    "open_namespace",
    "parse_url",
    "release_leader_lock",
    "sweep_all_namespaces",
]

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}
_log = logging.getLogger("jobqueue.file")


def parse_url(url: str) -> tuple[str, str, bool, int]:
    """``file:///path?durable=false&mode=0660`` -> (path, namespace, durable, mode); ``ValueError`` naming the problem."""
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
    options = parse_query(url, {"durable", "mode"})
    durable = options.get("durable", "true").lower()
    if durable not in _TRUE | _FALSE:
        raise ValueError(f"durable must be true or false in {redact_url(url)!r}, got {options['durable']!r}")
    mode_text = options.get("mode", oct(DEFAULT_MODE))
    try:
        mode = int(mode_text.removeprefix("0o"), 8)
    except ValueError:
        raise ValueError(
            f"mode must be an octal file mode such as 0660 in {redact_url(url)!r}, got {mode_text!r}"
        ) from None
    return path, DEFAULT_NAMESPACE, durable in _TRUE, check_mode(mode)


class Root:
    """What every view of one ``FileStorage`` shares: the directory, the connection count, caches, the sweep."""

    def __init__(self, path: str, *, durable: bool, mode: int, cleanup_interval: float) -> None:
        self.path = path
        self.durable = durable
        self.mode = mode
        self.cleanup_interval = cleanup_interval
        self.refs = 0
        self.spaces: dict[str, Space] = {}
        """Namespaces opened by a view (created and repaired)."""
        self.swept: dict[str, Space] = {}
        """Namespaces only the sweep touches (another process's), kept open between sweeps."""
        self.indexes: dict[str, ExpiryIndex] = {}
        self.refused: set[str] = set()
        """Namespaces the sweep refused (a symlinked or half-made directory), warned about once."""
        self.watchers: dict[str, DirWatcher] = {}
        self.cleaner: asyncio.Task[None] | None = None
        self.sweeping: asyncio.Future[int | None] | None = None
        """The sweep running in a worker thread, if any."""
        self.guard = asyncio.Lock()
        self.wake = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.next_sweep_at = 0
        self._deadline_lock = threading.Lock()

    def note_deadline(self, at: int) -> None:
        """Something falls due at ``at``: have the sweep run then (callable from any thread)."""
        with self._deadline_lock:
            if at >= self.next_sweep_at:
                return
            self.next_sweep_at = at
        loop = self.loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the storage is gone
                loop.call_soon_threadsafe(self.wake.set)

    def plan_sweep(self, at: int) -> None:
        """Set the next sweep to ``at`` (the sweep's own planning, on the loop)."""
        with self._deadline_lock:
            self.next_sweep_at = at


def open_namespace(root: Root, name: str) -> Space:
    """Create (and repair) a namespace's directory and open it."""
    if not os.path.isdir(root.path):  # the root itself may be a symlink: the user chose it
        parent = os.path.dirname(root.path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        ensure_dir(root.path, root.mode)
    space = Space(Layout(root.path, name), durable=root.durable, mode=root.mode)
    try:
        space.layout.ensure(durable=root.durable, mode=root.mode)
        repair_processing(space)
    except BaseException:
        space.close()
        raise
    space.on_deadline = root.note_deadline
    return space


def _namespace_dirs(root: Root) -> list[tuple[str, str]]:
    """(directory name, namespace) of every namespace under the root; symlinks are not followed."""
    found: list[tuple[str, str]] = []
    try:
        listed = list(os.scandir(root.path))
    except FileNotFoundError:
        return []
    for entry in listed:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            data = read_bytes(os.path.join(entry.path, "namespace"))
        except OSError:
            continue
        if data is None:
            continue
        with contextlib.suppress(UnicodeDecodeError):
            found.append((entry.name, data.decode("utf-8")))
    return found


@contextlib.contextmanager
def _space_of(root: Root, name: str) -> Iterator[Space]:
    """The open space of ``name``, or a temporary one whose lock files are closed afterwards."""
    space = root.spaces.get(name) or root.swept.get(name)
    if space is not None:
        yield space
        return
    layout = Layout(root.path, name)
    layout.verify()
    space = Space(layout, durable=root.durable, mode=root.mode)
    try:
        yield space
    finally:
        space.close()


def namespaces_in_use(root: Root) -> list[str]:
    """Namespaces under the root that hold live jobs or workers."""
    found: list[str] = []
    for _, name in _namespace_dirs(root):
        try:
            with _space_of(root, name) as space:
                if not is_empty(space):
                    found.append(name)
        except OSError as exc:  # a symlinked or half-made directory: not a namespace to report
            _log.warning("file storage: skipping namespace %r at %s: %s", name, root.path, exc)
    return found


def sweep_all_namespaces(root: Root) -> int | None:
    """Sweep every namespace under the root (not only this process's); return the next deadline."""
    deadlines: list[int] = []
    for _, name in _namespace_dirs(root):
        space = root.spaces.get(name) or root.swept.get(name)
        if space is None:
            layout = Layout(root.path, name)
            try:
                layout.verify()  # another process's namespace: refuse a symlinked directory in it
            except OSError as exc:
                if name not in root.refused:  # once, not at every sweep
                    root.refused.add(name)
                    _log.warning("file storage: not sweeping namespace %r at %s: %s", name, root.path, exc)
                continue
            space = root.swept[name] = Space(layout, durable=root.durable, mode=root.mode)
        index = root.indexes.get(name)
        if index is None:
            index = root.indexes[name] = ExpiryIndex(space.layout.expiry)
        try:
            at = sweep_namespace(space, index)
        except OSError as exc:  # one broken namespace must not stop the sweep of the others
            _log.warning("file storage sweep of namespace %r at %s failed: %s", name, root.path, exc)
            continue
        if at is not None:
            deadlines.append(at)
    return min(deadlines, default=None)


def _lock_path(space: Space, key: str) -> str:
    return os.path.join(space.layout.locks, "leader-" + names.encode_key(key))


def acquire_leader_lock(space: Space, key: str, owner: str, ttl_ms: int) -> bool:
    """Take or renew the leader lock ``key`` of the namespace for ``owner``."""
    return acquire_leader(_lock_path(space, key), owner, ttl_ms, now_ms(), space.mode)


def release_leader_lock(space: Space, key: str, owner: str) -> bool:
    """Release the leader lock ``key`` if ``owner`` holds it."""
    return release_leader(_lock_path(space, key), owner, now_ms(), space.mode)


def close_root(root: Root, watchers: list[DirWatcher], spaces: list[Space]) -> None:
    """Stop the watchers and close the namespaces (the last ``disconnect``)."""
    for watcher in watchers:
        watcher.stop()
    for space in spaces:
        space.close()
