"""Script replies turned into the contract's records.

A record is stored as a msgpack map with short field names (see
``lua/common.lua``); strings come back as bytes because Lua strings are
binary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack
from jobqueue import JobState
from jobqueue.storage import Claim, CorruptDataError, JobRecord, WorkerRecord

__all__ = ["claims_from_reply", "record_from_packed", "text", "workers_from_reply"]


def text(value: bytes | str) -> str:
    """A Redis bulk string as ``str`` (ids and states are stored as UTF-8)."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _blob(value: bytes | str) -> bytes:
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


def _opt_int(fields: dict[bytes, Any], name: bytes) -> int | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name!r} is not an int")
    return value


def _opt_bytes(fields: dict[bytes, Any], name: bytes) -> bytes | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, bytes):
        raise ValueError(f"{name!r} is not bytes")
    return value


def record_from_packed(job_id: str, packed: bytes | None) -> JobRecord | None:
    """Decode a stored record; None when there is none.

    Raises:
        CorruptDataError: the stored value is not a record.
    """
    if not packed:
        return None
    try:
        fields = msgpack.unpackb(packed, raw=True)
        if not isinstance(fields, dict):
            raise ValueError("not a map")
        worker = _opt_bytes(fields, b"w")
        message = fields[b"m"]
        if not isinstance(message, bytes):
            raise ValueError("message is not bytes")
        return JobRecord(
            id=job_id,
            state=JobState(text(fields[b"st"])),
            message=message,
            created_at=int(fields[b"c"]),
            updated_at=int(fields[b"u"]),
            attempts=int(fields.get(b"a", 0)),
            worker_id=None if worker is None else text(worker),
            result=_opt_bytes(fields, b"res"),
            error=_opt_bytes(fields, b"e"),
            run_at=_opt_int(fields, b"r"),
            lease_until=_opt_int(fields, b"l"),
            expires_at=_opt_int(fields, b"exp"),
            priority=int(fields.get(b"p", 0)),
            abort_requested=bool(fields.get(b"x")),
            progress=_opt_bytes(fields, b"g"),
        )
    except (KeyError, ValueError, TypeError, UnicodeDecodeError, msgpack.UnpackException) as exc:
        raise CorruptDataError(f"job {job_id!r} has an unreadable record ({len(packed)} bytes)") from exc


def claims_from_reply(reply: Sequence[Any]) -> tuple[list[Claim], int | None]:
    """``{next_due_ms, id, message, attempt, ...}`` -> claims and ms until the next due job (None: none)."""
    next_due = int(reply[0])
    claims = [
        Claim(id=text(reply[i]), message=reply[i + 1], attempt=int(reply[i + 2]))
        for i in range(1, len(reply), 3)
    ]
    return claims, (None if next_due < 0 else next_due)


def workers_from_reply(reply: Sequence[Any]) -> list[WorkerRecord]:
    """``{id, last_seen, expires_at, {job...}, info, ...}`` -> worker records sorted by id."""
    records = [
        WorkerRecord(
            id=text(reply[i]),
            last_seen=int(reply[i + 1]),
            expires_at=int(reply[i + 2]),
            jobs=tuple(sorted(text(job) for job in reply[i + 3])),
            info=_blob(reply[i + 4]),
        )
        for i in range(0, len(reply), 5)
    ]
    return sorted(records, key=lambda record: record.id)
