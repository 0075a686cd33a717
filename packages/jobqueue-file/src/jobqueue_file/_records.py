"""The job record file: msgpack of every ``JobRecord`` field plus where the job's entry lives, and a checksum.

Layout 3 is the msgpack array followed by the CRC-32 of it (4 bytes, little
endian): a record file's inode is reused for later writes (``_spares``), so
a reader may catch one half rewritten, and the checksum tells. Layout 2
(no checksum) is still read.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import msgpack
from jobqueue import CorruptDataError, JobState
from jobqueue.storage import JobRecord

__all__ = ["Stored", "pack_record", "unpack_record"]

_VERSION = 3
_UNCHECKED_VERSION = 2
_FIELDS = 19
_HEAD = bytes([0xDC, 0x00, _FIELDS])  # msgpack: an array of 19 items


@dataclass(frozen=True, slots=True)
class Stored:
    """A job as its file holds it: the contract's record plus two fields of the storage's own.

    ``uid`` names this incarnation of the job (a new enqueue, or a failed job
    queued again, gets a new one) and ``entry`` is the path of its entry file
    relative to the namespace directory (None once the record is deleted).
    """

    record: JobRecord
    uid: str
    entry: str | None


def pack_record(stored: Stored) -> bytes:
    """Encode a record for its file (layout 3: msgpack, then its CRC-32)."""
    record = stored.record
    data: bytes = msgpack.packb(
        [
            _VERSION,
            record.id,
            record.state.value,
            record.message,
            record.created_at,
            record.updated_at,
            stored.uid,
            stored.entry,
            record.attempts,
            record.worker_id,
            record.result,
            record.error,
            record.run_at,
            record.lease_until,
            record.expires_at,
            record.abort_requested,
            record.priority,
            record.progress,
            None,  # reserved, so a later field needs no new layout
        ],
        use_bin_type=True,
    )
    return data + zlib.crc32(data).to_bytes(4, "little")


def unpack_record(data: bytes, path: str) -> Stored:
    """Decode a record file; ``CorruptDataError`` naming ``path`` when it is not one (or torn)."""
    try:
        checked = data[: len(_HEAD) + 1] == _HEAD + bytes([_VERSION])
        if checked:
            data, crc = data[:-4], data[-4:]
            if zlib.crc32(data).to_bytes(4, "little") != crc:
                raise ValueError("checksum mismatch")
        items: Any = msgpack.unpackb(data, raw=False)
        version = _VERSION if checked else _UNCHECKED_VERSION
        if not isinstance(items, list) or len(items) != _FIELDS or items[0] != version:
            raise ValueError(f"unknown layout ({type(items).__name__})")
        record = JobRecord(
            id=_typed(items[1], str),
            state=JobState(items[2]),
            message=_typed(items[3], bytes),
            created_at=_typed(items[4], int),
            updated_at=_typed(items[5], int),
            attempts=_typed(items[8], int),
            worker_id=_optional(items[9], str),
            result=_optional(items[10], bytes),
            error=_optional(items[11], bytes),
            run_at=_optional(items[12], int),
            lease_until=_optional(items[13], int),
            expires_at=_optional(items[14], int),
            abort_requested=_typed(items[15], bool),
            priority=_typed(items[16], int),
            progress=_optional(items[17], bytes),
        )
        stored = Stored(record, _typed(items[6], str), _optional(items[7], str))
    except Exception as exc:
        raise CorruptDataError(f"corrupt job record file {path}: {type(exc).__name__}: {exc}") from exc
    return stored


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _optional(value: Any, kind: type) -> Any:
    return None if value is None else _typed(value, kind)
