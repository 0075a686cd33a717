"""What a handler receives (``Job``) and what ``after_execution`` sees (``ExecutionContext``)."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

__all__ = ["ExecutionContext", "Job"]

P = TypeVar("P")

_LeaseExtender = Callable[[float], Awaitable[bool]]
_ProgressReporter = Callable[[Any], Awaitable[bool]]


@dataclass(slots=True, eq=False)
class Job(Generic[P]):
    """One attempt of a job, as the handler sees it.

    Attributes:
        id: the job id given at enqueue.
        payload: the decoded payload.
        attempt: 1 on the first try, incremented on every retry (and after a stall).
        max_attempts: total tries allowed, fixed by the first enqueue.
        created_at: when the job was first enqueued (UTC).
        worker_id: the worker running this attempt.
        aborted: set when the attempt is aborted (``queue.abort``, ``job_timeout``,
            a lost lease or a forced stop). Async handlers are also cancelled;
            sync handlers running in a thread should check it.
    """

    id: str
    payload: P
    attempt: int
    max_attempts: int
    created_at: datetime
    worker_id: str
    _extend: _LeaseExtender | None = field(default=None, repr=False)
    _progress: _ProgressReporter | None = field(default=None, repr=False)
    # Built on first use: most async handlers never look, and an Event costs a lock per job.
    _aborted: threading.Event | None = field(default=None, repr=False)
    _abort_requested: bool = field(default=False, repr=False)

    @property
    def aborted(self) -> threading.Event:
        """Set when this attempt is aborted; sync handlers should check it."""
        if self._aborted is None:
            self._aborted = threading.Event()
            if self._abort_requested:
                self._aborted.set()
        return self._aborted

    def _abort(self) -> None:
        self._abort_requested = True
        if self._aborted is not None:
            self._aborted.set()

    async def extend_lease(self, seconds: float) -> bool:
        """Keep this job leased for ``seconds`` more from now (beyond the automatic renewal).

        Returns False when the worker no longer owns the job (it was recovered
        as stalled or aborted): the handler should stop.
        """
        if self._extend is None:
            return True
        return await self._extend(seconds)

    async def report_progress(self, value: Any) -> bool:
        """Store ``value`` as this job's progress and emit a ``progress`` event ``(job_id, value)``.

        ``value`` is anything the queue's result serde encodes to at most
        ``INLINE_RESULT_LIMIT`` bytes (8 KiB), e.g. ``{"done": 40, "total": 100}``.
        It is readable as ``JobStatus.progress`` until the job's record goes.
        Returns False when the worker no longer owns the job (the handler should stop).

        Raises:
            TypeError: the serde cannot encode ``value``.
            ValueError: ``value`` encodes to more than ``INLINE_RESULT_LIMIT`` bytes.
        """
        if self._progress is None:
            return True
        return await self._progress(value)


@dataclass(slots=True)
class ExecutionContext(Generic[P]):
    """What ``after_execution`` sees after an attempt.

    Changing ``result``, ``error`` or ``ttl`` changes what is stored.

    ``status`` is the outcome about to be stored: ``completed``, ``failing``
    (a retry follows) or ``failed``. ``ttl`` (seconds) is how long a terminal
    result or error lives.
    """

    id: str
    payload: P
    attempt: int
    max_attempts: int
    status: Literal["completed", "failing", "failed"]
    result: Any
    error: BaseException | None
    ttl: float
    worker_id: str
    started_at: datetime
    finished_at: datetime
    duration: float
