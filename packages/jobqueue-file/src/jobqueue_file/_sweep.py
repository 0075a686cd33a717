"""The sweep: what keeps a namespace physically clean once its results expire (synchronous).

Finished jobs have an entry in ``expiry/`` named by their expiry time, so a
sweep reads only the names that fell due, not every record: cheap enough
for every process that has the root open to run it, on its own, within a
second of a deadline (``FileStorage`` schedules it). It deletes

- expired records and their entries (``rules.is_live`` says when);
- registrations of workers that lapsed and hold nothing;
- this process's spare record files, once it has stopped writing (``_spares``);
- every ten seconds or so, temp files that dead processes left behind;

and settles the entries under ``processing/`` that the repair at connect
skipped (``Space.repair_pending``). A job or worker whose lock is taken is
skipped, not waited for (its holder may be frozen, and would hold up the
whole sweep), and looked at again ``BUSY_RETRY_MS`` later.
"""

from __future__ import annotations

import logging
import os
import time

from jobqueue.storage import now_ms, rules

from . import _names as names
from ._atomic import named
from ._locks import BUSY_RETRY_MS
from ._space import Space
from ._worker_ops import drop_worker_if_idle, settle_processing

__all__ = ["TEMP_SWEEP_SECONDS", "ExpiryIndex", "sweep_namespace"]

TEMP_SWEEP_SECONDS = 10.0
"""How often a sweep also looks for temp files of dead processes: a killed process leaves its spare
records (``_spares``, up to a few hundred), and listing ``jobs/`` this often costs little."""

_RELIST_SECONDS = 5.0  # an mtime can miss a change made within its granularity

_log = logging.getLogger("jobqueue.file")


class ExpiryIndex:
    """The sorted names of a namespace's ``expiry/``, listed again only when the directory changed."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._names: list[str] = []
        self._mtime = -1
        self._at = 0.0
        self.temp_swept_at = 0.0

    def names(self) -> list[str]:
        """The names, relisted when the directory's mtime moved (or every few seconds, to be safe)."""
        try:
            mtime = os.stat(self.directory, follow_symlinks=False).st_mtime_ns
        except OSError as exc:
            raise named(exc, self.directory) from exc
        if mtime != self._mtime or time.monotonic() - self._at > _RELIST_SECONDS:
            try:
                self._names = sorted(os.listdir(self.directory))
            except OSError as exc:
                raise named(exc, self.directory) from exc
            self._mtime, self._at = mtime, time.monotonic()
        return self._names


def sweep_namespace(space: Space, index: ExpiryIndex) -> int | None:
    """Delete what has expired in one namespace; return the next deadline (None: nothing pending)."""
    deadlines = [_sweep_expired(space, index), _sweep_workers(space)]
    if space.repair_pending:
        settle_processing(space)
        if space.repair_pending:
            deadlines.append(now_ms() + BUSY_RETRY_MS)
    space.spares.trim()
    if time.monotonic() - index.temp_swept_at > TEMP_SWEEP_SECONDS:
        space.clean_temp_files()
        index.temp_swept_at = time.monotonic()
    return min((at for at in deadlines if at is not None), default=None)


def _sweep_expired(space: Space, index: ExpiryIndex) -> int | None:
    retry_at: int | None = None  # a record skipped because its lock was taken
    for name in index.names():
        parsed = names.parse_entry(name, names.EXPIRY_PREFIX)
        if parsed is None:
            continue
        expires_at = int(parsed.prefix)
        now = now_ms()
        if expires_at > now:
            return expires_at if retry_at is None else min(expires_at, retry_at)
        found = "expiry/" + name
        with space.locks.try_hold(parsed.key) as held:
            if not held:
                if retry_at is None:
                    retry_at = now + BUSY_RETRY_MS
                continue
            stored, ok = space.read_entry(parsed.key, found)
            if not ok:
                continue
            if stored is None or stored.uid != parsed.uid or stored.entry != found:
                space.settle(parsed.key, parsed.uid, found)  # a stray, or an entry a crash left behind
            elif not rules.is_live(stored.record, now):
                space.apply(parsed.key, stored, rules.Step(None))
    return retry_at


def _sweep_workers(space: Space) -> int | None:
    keys = set(_listdir(space.layout.workers)) | set(_listdir(space.layout.processing))
    now = now_ms()
    upcoming = [
        at
        for key in keys
        if not key.startswith(".") and (at := drop_worker_if_idle(space, key, now)) is not None
    ]
    return min(upcoming, default=None)


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise named(exc, directory) from exc
