"""Turning stored bytes and timestamps into text a person can read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobqueue import CorruptDataError, MsgpackSerde, SerializationError
from jobqueue.storage import Envelope, JobRecord, decode_envelope

from ._safe import json_safe

__all__ = [
    "DecodedBytes",
    "ErrorInfo",
    "decode_bytes",
    "decode_error",
    "envelope_of",
    "format_age",
    "format_clock",
    "format_moment",
    "format_timestamp",
    "one_line",
]

_HEX_LIMIT = 4096
_MSGPACK: MsgpackSerde[Any] = MsgpackSerde()


@dataclass(frozen=True, slots=True)
class DecodedBytes:
    """Bytes shown as text: ``kind`` is ``json``, ``msgpack``, ``hex`` or ``empty``."""

    kind: str
    text: str


def decode_bytes(data: bytes | None) -> DecodedBytes:
    """Pretty JSON when ``data`` parses as JSON, else msgpack when it decodes, else hex."""
    if not data:
        return DecodedBytes("empty", "")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        pass
    else:
        return DecodedBytes(
            "json", json_safe(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))
        )
    try:
        value = _MSGPACK.deserialize(data)
    except SerializationError:
        pass
    else:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=_msgpack_default)
        return DecodedBytes("msgpack", json_safe(text))
    shown = data[:_HEX_LIMIT]
    lines = [shown[i : i + 16].hex(" ") for i in range(0, len(shown), 16)]
    if len(data) > _HEX_LIMIT:
        lines.append(f"... {len(data) - _HEX_LIMIT} more bytes")
    return DecodedBytes("hex", "\n".join(lines))


def one_line(data: bytes | None, *, limit: int = 200) -> str:
    """``data`` decoded like a result but on one line: ``{"done":40,"total":100}`` as ``40/100``.

    JSON, else msgpack, else the first bytes in hex; empty or None gives ``""``.
    Control characters are not escaped here: show the text with ``plain``.
    """
    decoded = decode_bytes(data)
    if decoded.kind in ("json", "msgpack"):
        value = json.loads(decoded.text)
        if isinstance(value, dict) and value.keys() == {"done", "total"}:
            done, total = value["done"], value["total"]
            if _is_number(done) and _is_number(total):
                return f"{done}/{total}"
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return json_safe(text)[:limit]
    if decoded.kind == "hex":
        assert data is not None  # decode_bytes returns "empty" for None
        return data[:8].hex(" ") + (" …" if len(data) > 8 else "")
    return ""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _msgpack_default(value: Any) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes: {value[:32].hex(' ')}>"
    return repr(value)


def envelope_of(record: JobRecord) -> Envelope | None:
    """The decoded envelope of a job, or None when its message is unreadable (a poison message)."""
    try:
        return decode_envelope(record.message)
    except CorruptDataError:
        return None


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A stored error, as the core writes it (``message``, ``type``, ``code``, ``traceback``)."""

    message: str
    type: str
    code: str
    traceback: str


def decode_error(data: bytes) -> ErrorInfo:
    """Read a stored error; bytes that are not the core's JSON object are shown as they are."""
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        value = None
    if not isinstance(value, dict):
        return ErrorInfo(decode_bytes(data).text, "Unknown", "UNREADABLE", "")
    return ErrorInfo(
        message=str(value.get("message", "")),
        type=str(value.get("type", "Error")),
        code=str(value.get("code", "")),
        traceback=str(value.get("traceback", "") or ""),
    )


def format_timestamp(ms: int | None) -> str:
    """Epoch milliseconds as local ``YYYY-MM-DD HH:MM:SS.mmm`` (fixed width), or ``-``."""
    if ms is None:
        return "-"
    moment = datetime.fromtimestamp(ms / 1000).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"


def format_clock(ms: int) -> str:
    """Epoch milliseconds as local ``HH:MM:SS`` (fixed width, for table cells)."""
    return datetime.fromtimestamp(ms / 1000).astimezone().strftime("%H:%M:%S")


def format_moment(ms: int, now: int) -> str:
    """Epoch milliseconds as local ``HH:MM:SS`` on the day of ``now``, else ``YYYY-MM-DD HH:MM``."""
    moment = datetime.fromtimestamp(ms / 1000).astimezone()
    if moment.date() == datetime.fromtimestamp(now / 1000).astimezone().date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M")


def format_age(delta_ms: int) -> str:
    """A short age, to the second: ``0s``, ``12s``, ``4m05s``, ``3h12m``, ``2d04h``; negative: ``in 1s``."""
    if delta_ms < 0:
        return f"in {format_age(-delta_ms)}"
    seconds = delta_ms // 1000
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
