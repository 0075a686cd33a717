"""The one place where public durations (seconds) become storage milliseconds."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta

__all__ = ["Duration", "from_ms", "now_ms", "to_ms", "validate_job_id"]

Duration = float | int | timedelta

MAX_JOB_ID_BYTES = 1024

MAX_SECONDS = 100 * 365 * 24 * 3600
"""The longest duration accepted (100 years): deadlines stay exact integers in every backend."""


def to_ms(value: Duration, name: str, *, allow_zero: bool = False) -> int:
    """Convert seconds (or a timedelta) to whole milliseconds, validating ``name``.

    Raises:
        TypeError: not a number or a timedelta.
        ValueError: negative, NaN, infinite, over 100 years, or zero when ``allow_zero`` is False.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{name} must be seconds (int, float or timedelta), not {type(value).__name__}")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{name} must be a finite number of seconds, got {value!r}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound} seconds, got {value!r}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{name} must be at most {MAX_SECONDS} seconds (100 years), got {value!r}")
    ms = math.ceil(seconds * 1000)
    return ms if ms > 0 or allow_zero else 1


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds to a tz-aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def now_ms() -> int:
    """The local clock in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def validate_job_id(job_id: object) -> str:
    """Check a job id: a non-empty ``str`` of at most 1024 UTF-8 bytes."""
    if not isinstance(job_id, str):
        raise TypeError(f"job_id must be a str, not {type(job_id).__name__}")
    if not job_id:
        raise ValueError("job_id must not be empty")
    try:
        size = len(job_id.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError("job_id must be valid unicode (no lone surrogates)") from exc
    if size > MAX_JOB_ID_BYTES:
        raise ValueError(f"job_id must be at most {MAX_JOB_ID_BYTES} bytes in UTF-8, got {size}")
    return job_id
