"""One namespace's directory: reading and writing records, and putting a rule's step on disk.

The operations themselves (``_queue_ops``, ``_worker_ops``, ``_monitor_ops``,
``_sweep``) decide nothing: they read a record under its job lock, ask
``jobqueue.storage.rules`` for the step, and hand it to ``Space.apply``,
which writes the record and moves the job's entry to where the step says,
in the order stated at the top of ``_storage.py``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from jobqueue import CorruptDataError, JobState
from jobqueue.storage import JobRecord, StorageEvent, rules

from . import _names as names
from ._atomic import (
    clean_temp_files,
    create_empty,
    ensure_dir,
    named,
    open_dir,
    read_settled,
    rename_if_exists,
    unlink_if_exists,
)
from ._events import EventLog
from ._layout import Layout
from ._listing import Listing
from ._locks import StripeLocks
from ._records import Stored, pack_record, unpack_record
from ._spares import Spares

__all__ = ["EntryGone", "Space", "side_by_side"]

_log = logging.getLogger("jobqueue.file")
T = TypeVar("T")
_READ_ATTEMPTS = 5

_appliers: ThreadPoolExecutor | None = None
"""Threads that apply the jobs of one batch side by side; never used by its own threads: no deadlock."""
_appliers_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _appliers
    with _appliers_lock:
        if _appliers is None:
            _appliers = ThreadPoolExecutor(8, thread_name_prefix="jobqueue-file-apply")
        return _appliers


def _forget_pool() -> None:
    """In a forked child: the parent's threads did not follow, so the child makes its own pool."""
    global _appliers, _appliers_lock
    _appliers, _appliers_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def side_by_side(calls: Sequence[Callable[[], T]], *, durable: bool) -> list[T]:
    """Run ``calls`` in a few threads at once when ``durable``; their results in order (the first error is raised).

    Each call is one job's whole change under its own job lock, in the order
    of ``Space.apply``, so running them side by side changes nothing for
    crash safety; but their fsyncs overlap, and the file system commits
    overlapping fsyncs in one journal transaction instead of one each: this
    is the group commit of a batch (``finish_many``, a claim of many jobs).
    Without fsyncs there is nothing to overlap, and the hand-offs between
    threads made a ``durable=False`` drain slower (about 650 against 850
    jobs/s), so the calls then run one after the other.
    """
    if len(calls) <= 1 or not durable:
        return [call() for call in calls]
    pool = _pool()
    futures = [pool.submit(call) for call in calls]
    return [future.result() for future in futures]


class EntryGone(Exception):
    """A job's entry was not where its record says when a claim went to move it (a stray another claimer dropped)."""


class Space:
    """One namespace's directory: records, entries, locks, the event log and cached listings."""

    def __init__(self, layout: Layout, *, durable: bool, mode: int) -> None:
        self.layout = layout
        self.durable = durable
        self.mode = mode
        self.locks = StripeLocks(layout.locks, mode)
        self.log = EventLog(layout.events, os.path.join(layout.locks, "events"), mode)
        self.queue = Listing(layout.queue)
        self.scheduled = Listing(layout.scheduled)
        self.on_deadline: Callable[[int], None] | None = None
        """Told of every new expiry or registration deadline, so the sweep wakes in time."""
        self.repair_pending = False
        """The repair at connect skipped an entry whose job lock was taken: the sweep settles it later."""
        self._bad: set[str] = set()
        self._dir_fds: dict[str, int] = {}
        self._checked_dirs: set[str] = set()
        self.spares = Spares(layout.jobs, mode, durable=durable, flush=lambda: self._fsync_dir(layout.jobs))

    def close(self) -> None:
        """Delete this process's spare records; close the lock, log and directory descriptors."""
        self.spares.close()
        self.locks.close()
        self.log.close()
        for fd in self._dir_fds.values():
            os.close(fd)
        self._dir_fds.clear()

    def refresh_listings(self) -> None:
        """Forget the cached listings: another process changed the queue or the schedule."""
        self.queue.invalidate()
        self.scheduled.invalidate()

    def publish(self, events: list[StorageEvent]) -> None:
        """Append events to the namespace's log (nothing to do for none)."""
        self.log.publish(events)

    def deadline(self, at: int) -> None:
        """Tell the sweep that something falls due at ``at``."""
        if self.on_deadline is not None:
            self.on_deadline(at)

    # ----------------------------------------------------------------- records

    def read(self, key: str) -> Stored | None:
        """The record of ``key`` as stored (expired or not); ``CorruptDataError`` when unreadable.

        Safe without the job lock: a record caught while it was rewritten
        (``read_settled``, the checksum) is read again.
        """
        path = self.layout.job(key)
        torn: bytes | None = None
        for attempt in range(_READ_ATTEMPTS):
            data = read_settled(path)
            if data is None:
                return None
            try:
                return unpack_record(data, path)
            except CorruptDataError:
                # The same bytes twice are corrupt for good, not caught mid-write.
                if data == torn or attempt == _READ_ATTEMPTS - 1:
                    raise
                torn = data
        raise AssertionError("unreachable")

    def read_entry(self, key: str, found: str) -> tuple[Stored | None, bool]:
        """The record behind entry ``found``, and False (logged once) when it is unreadable.

        The entry of an unreadable record is skipped and the file left where
        it is, for an operator to inspect: ``get`` keeps raising
        ``CorruptDataError`` naming it, and the other jobs go on.
        """
        try:
            stored = self.read(key)
        except CorruptDataError as exc:
            if found not in self._bad:
                self._bad.add(found)
                _log.error("skipping job entry %s: %s", found, exc)
            return None, False
        self._bad.discard(found)
        return stored, True

    def live(self, key: str, now: int) -> Stored | None:
        """The record of ``key`` unless it is absent or expired (``rules.is_live``)."""
        stored = self.read(key)
        return stored if stored is not None and rules.is_live(stored.record, now) else None

    def records(self) -> Iterator[tuple[str, Stored]]:
        """Every readable record, expired ones included; corrupt files are logged and skipped."""
        try:
            keys = os.listdir(self.layout.jobs)
        except OSError as exc:
            raise named(exc, self.layout.jobs) from exc
        for key in keys:
            if key.startswith("."):
                continue
            try:
                stored = self.read(key)
            except CorruptDataError as exc:
                _log.error("skipping an unreadable job record: %s", exc)
                continue
            if stored is not None:
                yield key, stored

    def write(self, key: str, stored: Stored, *, new: bool = False) -> None:
        """Replace the record of ``key`` atomically (through a spare file, ``_spares``); ``new``: none was there."""
        self.spares.write(self.layout.job(key), pack_record(stored), new=new)

    def sync_dirs(self, *directories: str) -> None:
        """Fsync directories (``durable`` only), so renames in them survive a power cut.

        A flush of the records' directory also frees the spares waiting for one.
        """
        if not self.durable:
            return
        for directory in dict.fromkeys(directories):
            if directory == self.layout.jobs:
                waiting = self.spares.waiting()
                self._fsync_dir(directory)
                self.spares.flushed(waiting)
            else:
                self._fsync_dir(directory)

    def _fsync_dir(self, directory: str) -> None:
        """Fsync a directory through a descriptor kept open, not one open per flush."""
        fd = self._dir_fds.get(directory)
        if fd is None:
            fd = open_dir(directory)
            kept = self._dir_fds.setdefault(directory, fd)
            if kept != fd:  # another thread opened it first
                os.close(fd)
                fd = kept
        try:
            os.fsync(fd)
        except OSError as exc:
            raise named(exc, directory) from exc

    # ----------------------------------------------------------------- entries

    def move(self, source: str, target: str) -> bool:
        """Rename an entry (relative paths), creating a worker's directory on first use.

        A worker's directory is checked once (``lstat``) before the first
        entry goes in, so a symlink planted there never takes one outside.
        """
        src, dst = self.layout.path(source), self.layout.path(target)
        directory = os.path.dirname(dst)
        if target.startswith("processing/") and directory not in self._checked_dirs:
            ensure_dir(directory, self.mode)
            self._checked_dirs.add(directory)
        try:
            return rename_if_exists(src, dst)
        except FileNotFoundError:
            if not os.path.lexists(src):
                return False
            ensure_dir(directory, self.mode)  # removed by a sweep since it was checked: create it again
            return rename_if_exists(src, dst)

    def entry_for(self, record: JobRecord, uid: str, key: str, place: rules.Place) -> str:
        """Where the entry of ``record`` goes after a step that puts it at ``place``."""
        if place is rules.Place.TAIL or place is rules.Place.HEAD:
            return "queue/" + names.queue_entry(record, uid, key, head=place is rules.Place.HEAD)
        if place is rules.Place.SCHEDULE:
            assert record.run_at is not None
            return "scheduled/" + names.scheduled_entry(record.run_at, uid, key)
        if record.state is JobState.PROCESSING:
            assert record.worker_id is not None
            return f"processing/{names.encode_key(record.worker_id)}/{names.processing_entry(uid, key)}"
        assert record.expires_at is not None, f"a {record.state} job has no place"
        return "expiry/" + names.expiry_entry(record.expires_at, uid, key)

    def apply(
        self, key: str, old: Stored | None, step: rules.Step, *, new_uid: bool = False
    ) -> Stored | None:
        """Put ``step`` on disk for the job ``key`` whose record was ``old`` (caller holds the lock).

        The order makes a crash at any point repairable from the record:

        - a new incarnation (a new job, a failed one queued again): create the
          entry, write the record, drop the old entry;
        - into ``processing/``: move the entry, then write the record;
        - anything else: write the record, then move or drop the entry.
        """
        layout = self.layout
        if step.record is None:
            self.spares.adopt(layout.job(key))
            if old is not None and old.entry is not None:
                unlink_if_exists(layout.path(old.entry))
            return None
        uid = names.new_uid() if new_uid or old is None else old.uid
        entry = self._target(key, old, step, uid)
        stored = Stored(step.record, uid, entry)
        if old is None or uid != old.uid:
            create_empty(layout.path(entry), self.mode, like=layout.entry)
            try:
                self.write(key, stored, new=old is None)
            except OSError:
                unlink_if_exists(layout.path(entry))  # a full disk, say: leave no stray behind
                raise
            if old is not None and old.entry is not None:
                unlink_if_exists(layout.path(old.entry))
        elif entry.startswith("processing/") and old.entry != entry:
            assert old.entry is not None
            if not self.move(old.entry, entry):
                raise EntryGone(layout.path(old.entry))
            try:
                self.write(key, stored)
            except OSError:
                self.move(entry, old.entry)  # the job stays where its record says
                raise
        else:
            self.write(key, stored)
            if old.entry is not None and old.entry != entry:
                self.move(old.entry, entry)
        self._note(stored, old)
        return stored

    def _target(self, key: str, old: Stored | None, step: rules.Step, uid: str) -> str:
        """The entry after ``step``: the old one while the job stays put, else a new name."""
        record = step.record
        assert record is not None
        if step.place is rules.Place.NONE and old is not None and old.uid == uid and old.entry is not None:
            before = old.record
            stays = before.state is record.state and (
                not record.state.is_terminal or before.expires_at == record.expires_at
            )
            if stays:  # a renewed lease, a progress value, an abort flag: same place, same name
                return old.entry
        return self.entry_for(record, uid, key, step.place)

    def _note(self, stored: Stored, old: Stored | None) -> None:
        """Keep the cached listings and the sweep's deadline in line with a step just applied."""
        entry = stored.entry
        if (
            old is not None
            and old.entry != entry
            and old.entry is not None
            and old.entry.startswith("scheduled/")
        ):
            self.scheduled.discard(old.entry.removeprefix("scheduled/"))
        if entry is None:
            return
        if entry.startswith("queue/"):
            self.queue.add(entry.removeprefix("queue/"))
        elif entry.startswith("scheduled/"):
            self.scheduled.add(entry.removeprefix("scheduled/"))
        elif entry.startswith("expiry/") and stored.record.expires_at is not None:
            self.deadline(stored.record.expires_at)

    def settle(self, key: str, uid: str, found: str) -> Stored | None:
        """Make the entry ``found`` agree with its record (caller holds the lock); return the record.

        An entry of another incarnation, or of a deleted job, is removed; an
        entry elsewhere than its record says is moved there.
        """
        stored = self.read(key)
        if stored is None or stored.uid != uid or stored.entry is None:
            unlink_if_exists(self.layout.path(found))
        elif stored.entry != found and self.move(found, stored.entry):
            self.refresh_listings()
        return stored

    def processing_entries(self) -> list[tuple[str, names.EntryName]]:
        """Every entry under ``processing/``, as (relative path, parsed name); symlinks are skipped."""
        found: list[tuple[str, names.EntryName]] = []
        try:
            workers = [
                entry.name
                for entry in os.scandir(self.layout.processing)
                if entry.is_dir(follow_symlinks=False)
            ]
        except OSError as exc:
            raise named(exc, self.layout.processing) from exc
        for worker_key in workers:
            try:
                listed = os.listdir(self.layout.worker_dir(worker_key))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in listed:
                parsed = names.parse_entry(name, names.PROCESSING_PREFIX)
                if parsed is not None:
                    found.append((f"processing/{worker_key}/{name}", parsed))
        return found

    def clean_temp_files(self) -> None:
        """Remove temp files that dead processes left behind."""
        for directory in (self.layout.dir, self.layout.jobs, self.layout.workers):
            clean_temp_files(directory)
