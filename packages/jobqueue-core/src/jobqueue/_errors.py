"""The jobqueue exception tree.

::

    JobQueueError
    ├── JobTimeoutError        (also a builtin TimeoutError)
    ├── JobFailedError
    │   └── MaxRetriesError
    ├── JobNotFoundError
    ├── JobCancelledError
    ├── StorageError
    │   └── CorruptDataError
    └── SerializationError

Bad arguments raise the builtin ``ValueError`` / ``TypeError`` before anything
is written; every other failure the library reports is a ``JobQueueError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "CorruptDataError",
    "JobCancelledError",
    "JobFailedError",
    "JobNotFoundError",
    "JobQueueError",
    "JobTimeoutError",
    "MaxRetriesError",
    "SerializationError",
    "StorageError",
    "map_exceptions",
]


class JobQueueError(Exception):
    """Base class of every error jobqueue raises on purpose."""


class JobTimeoutError(JobQueueError, TimeoutError):
    """Raised when a wait (``enqueue_and_wait``) or an attempt (``job_timeout``) runs out of time."""

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class JobFailedError(JobQueueError):
    """Raised by ``enqueue_and_wait`` when the job ended in ``failed``.

    ``error`` holds the stored error: ``message``, ``type``, ``code``, ``traceback``.
    """

    def __init__(self, job_id: str, error: dict[str, Any]) -> None:
        super().__init__(f"job {job_id!r} failed: {error.get('type', 'Error')}: {error.get('message', '')}")
        self.job_id = job_id
        self.error = error


class MaxRetriesError(JobFailedError):
    """The stored error of a job that used all its attempts (``error['code'] == 'MAX_RETRIES'``)."""


class JobNotFoundError(JobQueueError):
    """Raised when an operation needs a job that the storage does not hold."""

    def __init__(self, job_id: str, message: str | None = None) -> None:
        super().__init__(message or f"job {job_id!r} not found")
        self.job_id = job_id


class JobCancelledError(JobQueueError):
    """Raised when a job was cancelled before it ran, or aborted while it ran."""

    def __init__(self, job_id: str, message: str | None = None) -> None:
        super().__init__(message or f"job {job_id!r} was cancelled")
        self.job_id = job_id


class StorageError(JobQueueError):
    """A backend failure: connection lost, server error, unreadable data, disk full.

    The backend's own exception is kept as ``__cause__``.
    """


class CorruptDataError(StorageError):
    """Stored bytes that cannot be decoded (a poison message, a damaged file)."""


class SerializationError(JobQueueError):
    """A payload or result the serde cannot encode, or bytes it cannot decode."""


@contextmanager
def map_exceptions(mapping: dict[type[BaseException], type[JobQueueError]], context: str) -> Iterator[None]:
    """Translate backend exceptions into jobqueue errors, once, at the boundary.

    Args:
        mapping: backend exception type -> jobqueue error type; first match wins.
        context: what was being done, prefixed to the message (``"redis enqueue"``).
    """
    try:
        yield
    except JobQueueError:
        raise
    except Exception as exc:
        for source, target in mapping.items():
            if isinstance(exc, source):
                raise target(f"{context}: {type(exc).__name__}: {exc}") from exc
        raise
