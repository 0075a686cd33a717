"""Script replies turned into the contract's records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobqueue import Claim, CorruptDataError, JobRecord, JobState, WorkerRecord

__all__ = ["claims_from_reply", "record_from_fields", "text", "workers_from_reply"]


def text(value: bytes | str) -> str:
    """A Redis bulk string as ``str`` (ids and states are stored as UTF-8)."""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _int(fields: dict[bytes, bytes], name: bytes) -> int | None:
    value = fields.get(name)
    return None if value is None else int(value)


def record_from_fields(job_id: str, flat: Sequence[bytes] | dict[bytes, bytes]) -> JobRecord | None:
    """Build a record from an HGETALL reply (flat from Lua, a dict from redis-py); None when empty."""
    if not flat:
        return None
    fields = dict(flat) if isinstance(flat, dict) else dict(zip(flat[::2], flat[1::2], strict=True))
    try:
        worker = fields.get(b"worker")
        return JobRecord(
            id=job_id,
            state=JobState(text(fields[b"state"])),
            message=fields[b"message"],
            created_at=int(fields[b"created"]),
            updated_at=int(fields[b"updated"]),
            attempts=int(fields.get(b"attempts", b"0")),
            worker_id=None if worker is None else text(worker),
            result=fields.get(b"result"),
            error=fields.get(b"error"),
            run_at=_int(fields, b"run_at"),
            lease_until=_int(fields, b"lease_until"),
            expires_at=_int(fields, b"expires_at"),
        )
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptDataError(f"job {job_id!r} has an unreadable record: {sorted(fields)!r:.120}") from exc


def claims_from_reply(reply: Sequence[Any]) -> tuple[list[Claim], int | None]:
    """``{next_due_ms, id, message, attempt, ...}`` -> claims and ms until the next due job (None: none)."""
    next_due = int(reply[0])
    claims = [
        Claim(id=text(reply[i]), message=reply[i + 1], attempt=int(reply[i + 2]))
        for i in range(1, len(reply), 3)
    ]
    return claims, (None if next_due < 0 else next_due)


def workers_from_reply(reply: Sequence[Any]) -> list[WorkerRecord]:
    """``{id, last_seen, expires_at, {job...}, ...}`` -> worker records sorted by id."""
    records = [
        WorkerRecord(
            id=text(reply[i]),
            last_seen=int(reply[i + 1]),
            expires_at=int(reply[i + 2]),
            jobs=tuple(sorted(text(job) for job in reply[i + 3])),
        )
        for i in range(0, len(reply), 4)
    ]
    return sorted(records, key=lambda record: record.id)
