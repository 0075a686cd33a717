"""Job id helpers: ``new_id`` (time-ordered, unique) and ``content_id`` (a hash of the payload)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Any

from ._serde import JsonSerde, Serde, dumps

__all__ = ["content_id", "new_id"]

# Crockford's base32: no I, L, O or U, and ASCII order equals numeric order, so ids sort by time.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80
_lock = threading.Lock()
_last: tuple[int, int] = (0, 0)  # (milliseconds, random part) of the last id made in this process


def new_id() -> str:
    """A new unique job id that sorts by creation time (a ULID: 26 characters of base32).

    The first 10 characters are the time in milliseconds, the last 16 are
    random. Within one millisecond of one process the random part counts up,
    so ids made in one process are strictly increasing.
    """
    global _last
    with _lock:
        ms = time.time_ns() // 1_000_000
        last_ms, last_random = _last
        if ms <= last_ms:  # same millisecond, or the clock stepped back: stay ordered
            ms, random = last_ms, last_random + 1
            if random >> _RANDOM_BITS:  # 2**80 ids in one millisecond: borrow the next one
                ms, random = ms + 1, int.from_bytes(os.urandom(10), "big") >> 1
        else:
            # the top bit stays clear so counting up within a millisecond cannot overflow
            random = int.from_bytes(os.urandom(10), "big") >> 1
        _last = (ms, random)
    value = (ms << _RANDOM_BITS) | random
    return "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


def content_id(payload: Any, serde: Serde[Any] | None = None) -> str:
    """A stable id for ``payload``: the SHA-256 (hex) of its encoding by ``serde`` (default JSON).

    Enqueueing with ``content_id(payload)`` as the id deduplicates equal
    payloads. The id depends on the exact bytes: with JSON, ``{"a": 1, "b": 2}``
    and ``{"b": 2, "a": 1}`` differ (key order is kept).

    Raises:
        SerializationError: the serde cannot encode ``payload``.
    """
    data = dumps(serde if serde is not None else JsonSerde(), payload, "payload")
    return hashlib.sha256(data).hexdigest()
