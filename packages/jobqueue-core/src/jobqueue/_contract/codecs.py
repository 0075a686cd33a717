"""Binary encodings owned by the core: the job envelope and storage events.

Both are msgpack. Backends use ``encode_event``/``decode_event`` so that every
storage speaks the same event format (the Redis Lua scripts build the same
array with ``cmsgpack``: ``[kind, job_id, at_ms, worker_id|nil, data|nil]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from .._errors import CorruptDataError
from .records import EventKind, StorageEvent

__all__ = [
    "Envelope",
    "decode_envelope",
    "decode_event",
    "encode_envelope",
    "encode_event",
    "pack_envelope",
]

_ENVELOPE_VERSION = 2


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the core stores as a job's message: the encoded payload and the job's fixed settings.

    ``job_timeout`` (ms) overrides the queue's for this job; ``headers`` carry
    context across processes (a trace's ``traceparent``, for example).
    """

    payload: bytes
    created_at: int
    max_attempts: int
    result_ttl: int
    job_timeout: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


def encode_envelope(envelope: Envelope) -> bytes:
    """Encode an envelope (never fails for a well-typed envelope)."""
    return pack_envelope(
        envelope.payload,
        envelope.created_at,
        envelope.max_attempts,
        envelope.result_ttl,
        envelope.job_timeout,
        envelope.headers,
    )


def pack_envelope(
    payload: bytes,
    created_at: int,
    max_attempts: int,
    result_ttl: int,
    job_timeout: int | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """``encode_envelope`` from the fields, without building an ``Envelope`` (once per enqueued job)."""
    items: list[Any] = [_ENVELOPE_VERSION, payload, created_at, max_attempts, result_ttl]
    if job_timeout is not None or headers:
        items += [job_timeout, headers or {}]
    data: bytes = msgpack.packb(items, use_bin_type=True)
    return data


def decode_envelope(data: bytes) -> Envelope:
    """Decode an envelope (versions 1 and 2); raise ``CorruptDataError`` naming what is wrong."""
    try:
        items = msgpack.unpackb(data, raw=False)
    except Exception as exc:
        raise CorruptDataError(f"job message is not valid msgpack ({len(data)} bytes)") from exc
    if type(items) is not list or len(items) not in (5, 7) or items[0] not in (1, 2):
        raise CorruptDataError(f"job message has an unknown layout: {_preview(items)}")
    if len(items) == 5:
        _, payload, created_at, max_attempts, result_ttl = items
        job_timeout, headers = None, {}
    else:
        _, payload, created_at, max_attempts, result_ttl, job_timeout, headers = items
    # ``type(...) is``: msgpack decodes to exact builtin types; a bool is not an int here (once per job)
    if not (
        type(payload) is bytes
        and type(created_at) is int
        and type(max_attempts) is int
        and type(result_ttl) is int
        and (job_timeout is None or type(job_timeout) is int)
        and type(headers) is dict
        and (not headers or all(type(k) is str and type(v) is str for k, v in headers.items()))
    ):
        raise CorruptDataError(f"job message has fields of the wrong type: {_preview(items)}")
    return Envelope(payload, created_at, max_attempts, result_ttl, job_timeout, headers)


def encode_event(event: StorageEvent) -> bytes:
    """Encode an event for a pub/sub channel."""
    data: bytes = msgpack.packb(
        [event.kind.value, event.job_id, event.at, event.worker_id, event.data],
        use_bin_type=True,
    )
    return data


def decode_event(data: bytes) -> StorageEvent:
    """Decode an event; raise ``CorruptDataError`` when it is not one."""
    try:
        items = msgpack.unpackb(data, raw=False, unicode_errors="surrogateescape")
        kind, job_id, at, worker_id, payload = items
        kind = EventKind(kind)
    except Exception as exc:
        raise CorruptDataError(f"unreadable event: {data[:80]!r}") from exc
    if isinstance(payload, str):  # cmsgpack packs Lua strings as msgpack str
        payload = payload.encode("utf-8", "surrogateescape")
    if not isinstance(job_id, str) or not _is_int(at):
        raise CorruptDataError(f"event with fields of the wrong type: {items!r:.80}")
    return StorageEvent(
        kind=kind,
        job_id=job_id,
        at=at,
        worker_id=worker_id if isinstance(worker_id, str) and worker_id else None,
        data=payload if isinstance(payload, bytes) else None,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _preview(value: Any) -> str:
    return repr(value)[:80]
