"""The directory layout of one namespace.

::

    <root>/<namespace key>/
        namespace               the namespace's name (keys may be digests)
        jobs/<key>              one record per job (msgpack), replaced atomically
        queue/<order>-<uid>-<key>            ready jobs, empty files; name order is claim order
        scheduled/<run_at>-<uid>-<key>       delayed jobs and pending retries
        processing/<worker key>/<uid>-<key>  jobs claimed by a worker
        expiry/<expires_at>-<uid>-<key>      finished jobs, in the order the sweep deletes them
        workers/<worker key>    worker registrations (msgpack: id, last_seen, expires_at, info)
        locks/                  job lock stripes, leader locks, the event log lock
        events/<n>.log          the event log (length-prefixed, append-only, rotated)
"""

from __future__ import annotations

import os

from ._atomic import check_dir, ensure_dir, read_bytes, write_atomic
from ._names import encode_key

__all__ = ["Layout"]

_DIRS = ("jobs", "queue", "scheduled", "processing", "expiry", "workers", "locks", "events")


class Layout:
    """Paths of one namespace under a storage root. ``entry`` paths are relative to ``dir``."""

    def __init__(self, root: str, namespace: str) -> None:
        self.namespace = namespace
        self.dir = os.path.join(root, encode_key(namespace))
        self.jobs = os.path.join(self.dir, "jobs")
        self.queue = os.path.join(self.dir, "queue")
        self.scheduled = os.path.join(self.dir, "scheduled")
        self.processing = os.path.join(self.dir, "processing")
        self.expiry = os.path.join(self.dir, "expiry")
        self.workers = os.path.join(self.dir, "workers")
        self.locks = os.path.join(self.dir, "locks")
        self.events = os.path.join(self.dir, "events")

    def ensure(self, *, durable: bool, mode: int) -> None:
        """Create the namespace's directories (idempotent, safe against concurrent creators).

        Raises:
            OSError: a directory cannot be created, is a symlink, or is not writable.
        """
        ensure_dir(self.dir, mode)
        for sub in _DIRS:
            path = os.path.join(self.dir, sub)
            ensure_dir(path, mode)
            if not os.access(path, os.W_OK | os.X_OK):
                raise PermissionError(13, "directory is not writable", path)
        name_file = os.path.join(self.dir, "namespace")
        if read_bytes(name_file) is None:
            write_atomic(name_file, self.namespace.encode("utf-8"), durable=durable, mode=mode, sync_dir=True)

    def verify(self) -> None:
        """Check, without creating anything, that the namespace's directories are real ones.

        Raises:
            OSError: one is missing, a symlink, or not a directory.
        """
        check_dir(self.dir)
        for sub in _DIRS:
            check_dir(os.path.join(self.dir, sub))

    def job(self, key: str) -> str:
        """The record file of job ``key``."""
        return os.path.join(self.jobs, key)

    def path(self, entry: str) -> str:
        """Absolute path of an entry given relative to the namespace directory."""
        return os.path.join(self.dir, entry)

    def worker_dir(self, worker_key: str) -> str:
        """The processing directory of one worker."""
        return os.path.join(self.processing, worker_key)

    def worker_file(self, worker_key: str) -> str:
        """The registration file of one worker."""
        return os.path.join(self.workers, worker_key)
