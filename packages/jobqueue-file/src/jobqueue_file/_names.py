"""Job ids, worker ids and namespaces as safe file names, and the names of queue entries.

A *key* is the file name that stands for an id. The encoding keeps ``a-z``,
``0-9``, ``-`` and ``_`` and writes every other UTF-8 byte as ``%xx`` (lower
case hex), so a key never holds ``/``, never starts with ``.`` (never ``.`` or
``..``, never a temp file), uses lower case only (ids that differ only in
case stay distinct on case-insensitive file systems) and decodes back to the
exact id. A key longer than ``MAX_KEY`` becomes ``~`` + the SHA-256 of the id
(``~`` never appears in an encoded key); those ids are kept inside the file.

Entries are empty files whose name carries everything a reader needs:
``<order>-<uid>-<key>`` in ``queue/``, ``<run_at>-<uid>-<key>`` in
``scheduled/``, ``<uid>-<key>`` in ``processing/<worker>/`` and
``<expires_at>-<uid>-<key>`` in ``expiry/`` (finished jobs, for the sweep).
``order`` is ``rules.claim_order`` spelled so that name order is claim
order: ``PRIORITY_MAX - priority`` on four digits (higher priority first),
then ``h`` for a head insert (release, recovery) or ``n`` for a tail insert,
then a stamp (heads newest first, tails oldest first). ``uid`` names one
incarnation of a job, so an entry left over from an earlier one is
recognised and dropped.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass

from jobqueue.storage import JobRecord, rules

__all__ = [
    "MAX_KEY",
    "PROCESSING_PREFIX",
    "QUEUE_PREFIX",
    "SCHEDULED_PREFIX",
    "EXPIRY_PREFIX",
    "EntryName",
    "decode_key",
    "encode_key",
    "expiry_entry",
    "is_digest",
    "new_uid",
    "parse_entry",
    "processing_entry",
    "queue_entry",
    "scheduled_entry",
]

MAX_KEY = 200
"""Longest encoded key kept readable: 255 (NAME_MAX) minus the longest entry prefix, with room to spare."""

_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")
_HEX = "0123456789abcdef"
_UID_LEN = 16
_PRIORITY_LEN = 4  # PRIORITY_MAX - priority: 0..2000
_ORDER_LEN = _PRIORITY_LEN + 21  # then one letter and twenty digits
_RUN_AT_LEN = 15  # MAX_DEADLINE_MS has 14 digits
_HEAD_BASE = 10**20


def encode_key(name: str) -> str:
    """The file name standing for ``name`` (a job id, a worker id or a namespace)."""
    raw = name.encode("utf-8", "surrogatepass")
    parts = [chr(byte) if byte in _SAFE else f"%{_HEX[byte >> 4]}{_HEX[byte & 15]}" for byte in raw]
    key = "".join(parts)
    if not key or len(key) > MAX_KEY:
        return "~" + hashlib.sha256(raw).hexdigest()
    return key


def is_digest(key: str) -> bool:
    """True when ``key`` is a digest: the id it stands for must be read from the file."""
    return key.startswith("~")


def decode_key(key: str) -> str:
    """The id an encoded key stands for; ``ValueError`` for a digest or a foreign name."""
    if is_digest(key):
        raise ValueError(f"{key!r} is a digest key; the id is stored in the file")
    out = bytearray()
    i = 0
    while i < len(key):
        char = key[i]
        if char == "%" and i + 2 < len(key) and all(c in _HEX for c in key[i + 1 : i + 3]):
            out.append(int(key[i + 1 : i + 3], 16))
            i += 3
        elif ord(char) < 128 and ord(char) in _SAFE:
            out.append(ord(char))
            i += 1
        else:
            raise ValueError(f"{key!r} is not an encoded name")
    return out.decode("utf-8", "surrogatepass")


def new_uid() -> str:
    """A random id for one incarnation of a job."""
    return os.urandom(_UID_LEN // 2).hex()


class _Clock:
    """Strictly increasing nanosecond stamps within this process (the wall clock may stall or step)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return self._last


_clock = _Clock()


def queue_entry(record: JobRecord, uid: str, key: str, *, head: bool) -> str:
    """A ``queue/`` name: name order is ``rules.claim_order`` (priority, then head or tail, then age).

    A tail insert sorts after every entry of its priority (FIFO); a head
    insert before every one of them (the job is claimed next).
    """
    stamp = _clock.next()
    neg_priority, seq = rules.claim_order(record, _HEAD_BASE - stamp if head else stamp)
    return (
        f"{neg_priority + rules.PRIORITY_MAX:0{_PRIORITY_LEN}d}{'h' if head else 'n'}{seq:020d}-{uid}-{key}"
    )


def scheduled_entry(run_at: int, uid: str, key: str) -> str:
    """A ``scheduled/`` name; sorted by name is sorted by due time."""
    return f"{max(run_at, 0):0{_RUN_AT_LEN}d}-{uid}-{key}"


def expiry_entry(expires_at: int, uid: str, key: str) -> str:
    """An ``expiry/`` name; sorted by name is sorted by expiry."""
    return f"{max(expires_at, 0):0{_RUN_AT_LEN}d}-{uid}-{key}"


def processing_entry(uid: str, key: str) -> str:
    """A ``processing/<worker>/`` name."""
    return f"{uid}-{key}"


@dataclass(frozen=True, slots=True)
class EntryName:
    """A parsed entry name: ``prefix`` is the order (queue) or run_at (scheduled), empty in processing."""

    prefix: str
    uid: str
    key: str


def parse_entry(name: str, prefix_len: int) -> EntryName | None:
    """Split an entry name made by this module; None for anything else (temp files, strays)."""
    cut = prefix_len + 1 if prefix_len else 0
    if len(name) <= cut + _UID_LEN + 1 or (prefix_len and name[prefix_len] != "-"):
        return None
    uid = name[cut : cut + _UID_LEN]
    if name[cut + _UID_LEN] != "-" or any(c not in _HEX for c in uid):
        return None
    return EntryName(name[:prefix_len], uid, name[cut + _UID_LEN + 1 :])


QUEUE_PREFIX = _ORDER_LEN
SCHEDULED_PREFIX = _RUN_AT_LEN
EXPIRY_PREFIX = _RUN_AT_LEN
PROCESSING_PREFIX = 0
