"""The job record file: msgpack of the ``JobRecord`` fields plus where the job's entry lives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack
from jobqueue import CorruptDataError, JobRecord, JobState

__all__ = ["Record", "pack_record", "unpack_record"]

_VERSION = 1


@dataclass(slots=True)
class Record:
    """A job record as stored: the public fields plus three of the storage's own.

    ``uid`` names this incarnation of the job, ``entry`` is the path of its
    entry file relative to the namespace directory (None when finished) and
    ``abort`` says an abort was requested while it ran.
    """

    id: str
    state: JobState
    message: bytes
    created_at: int
    updated_at: int
    uid: str
    entry: str | None
    attempts: int = 0
    worker_id: str | None = None
    result: bytes | None = None
    error: bytes | None = None
    run_at: int | None = None
    lease_until: int | None = None
    expires_at: int | None = None
    abort: bool = False

    def is_live(self, now: int) -> bool:
        """False once a terminal record has expired: it counts as absent from then on."""
        return self.expires_at is None or self.expires_at > now

    def public(self) -> JobRecord:
        """The record as the storage contract returns it."""
        return JobRecord(
            id=self.id,
            state=self.state,
            message=self.message,
            created_at=self.created_at,
            updated_at=self.updated_at,
            attempts=self.attempts,
            worker_id=self.worker_id,
            result=self.result,
            error=self.error,
            run_at=self.run_at,
            lease_until=self.lease_until,
            expires_at=self.expires_at,
        )


def pack_record(record: Record) -> bytes:
    """Encode a record for its file."""
    data: bytes = msgpack.packb(
        [
            _VERSION,
            record.id,
            record.state.value,
            record.message,
            record.created_at,
            record.updated_at,
            record.uid,
            record.entry,
            record.attempts,
            record.worker_id,
            record.result,
            record.error,
            record.run_at,
            record.lease_until,
            record.expires_at,
            record.abort,
        ],
        use_bin_type=True,
    )
    return data


def unpack_record(data: bytes, path: str) -> Record:
    """Decode a record file; ``CorruptDataError`` naming ``path`` when it is not one."""
    try:
        items: Any = msgpack.unpackb(data, raw=False)
        if not isinstance(items, list) or len(items) != 16 or items[0] != _VERSION:
            raise ValueError(f"unknown layout ({type(items).__name__})")
        record = Record(
            id=_typed(items[1], str),
            state=JobState(items[2]),
            message=_typed(items[3], bytes),
            created_at=_typed(items[4], int),
            updated_at=_typed(items[5], int),
            uid=_typed(items[6], str),
            entry=_optional(items[7], str),
            attempts=_typed(items[8], int),
            worker_id=_optional(items[9], str),
            result=_optional(items[10], bytes),
            error=_optional(items[11], bytes),
            run_at=_optional(items[12], int),
            lease_until=_optional(items[13], int),
            expires_at=_optional(items[14], int),
            abort=_typed(items[15], bool),
        )
    except Exception as exc:
        raise CorruptDataError(f"corrupt job record file {path}: {type(exc).__name__}: {exc}") from exc
    return record


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _optional(value: Any, kind: type) -> Any:
    return None if value is None else _typed(value, kind)
