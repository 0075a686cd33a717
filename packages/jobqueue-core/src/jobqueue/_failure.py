"""How an exception becomes a stored error, and a stored error becomes an exception."""

from __future__ import annotations

import json
import traceback
from typing import Any

from ._errors import JobFailedError, MaxRetriesError

__all__ = ["ErrorCode", "decode_error", "encode_error", "error_to_exception"]


class ErrorCode:
    """Values of a stored error's ``code``."""

    HANDLER = "HANDLER_ERROR"
    TIMEOUT = "JOB_TIMEOUT"
    CANCELLED = "CANCELLED"
    MAX_RETRIES = "MAX_RETRIES"
    DECODE = "DECODE_ERROR"
    STALLED = "STALLED"


def encode_error(exc: BaseException, code: str, *, message: str | None = None) -> bytes:
    """Store an exception as JSON: ``message``, ``type``, ``code``, ``traceback``."""
    own_code = getattr(exc, "code", None)
    if code == ErrorCode.HANDLER and isinstance(own_code, str):
        code = own_code  # a handler's exception may carry its own code, as in Node
    body = {
        "message": message if message is not None else str(exc),
        "type": type(exc).__name__,
        "code": code,
        "traceback": "".join(traceback.format_exception(exc)),
    }
    return json.dumps(body).encode()


def decode_error(data: bytes | None) -> dict[str, Any]:
    """Read a stored error; unreadable bytes become an error that says so."""
    if data is None:
        return {"message": "no error stored", "type": "Unknown", "code": "UNKNOWN", "traceback": ""}
    try:
        value = json.loads(data)
        if isinstance(value, dict):
            return value
    except (ValueError, UnicodeDecodeError):
        pass
    return {"message": f"unreadable stored error: {data[:80]!r}", "type": "Unknown", "code": "CORRUPT"}


def error_to_exception(job_id: str, error: dict[str, Any]) -> Exception:
    """The exception ``enqueue_and_wait`` raises for a stored error."""
    if error.get("code") == ErrorCode.MAX_RETRIES:
        return MaxRetriesError(job_id, error)
    return JobFailedError(job_id, error)
