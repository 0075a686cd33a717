"""Value types shared by the queue, the storages and the tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, Literal, TypedDict, TypeVar

__all__ = [
    "CancelResult",
    "EnqueueResult",
    "JobOptions",
    "JobState",
    "JobStatus",
    "UpdateTtlResult",
]

R = TypeVar("R")


class JobState(StrEnum):
    """The life cycle of a job.

    ``queued`` -> ``processing`` -> ``completed`` | ``failing`` (a retry is pending,
    back to ``queued`` when due) | ``failed``. Cancelled jobs leave no record.
    """

    QUEUED = "queued"
    PROCESSING = "processing"
    FAILING = "failing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        """True for ``completed`` and ``failed``: the job will not run again."""
        return self in (JobState.COMPLETED, JobState.FAILED)


@dataclass(frozen=True, slots=True)
class EnqueueResult(Generic[R]):
    """What ``Queue.enqueue`` did.

    ``status`` is ``"queued"`` (accepted), ``"duplicate"`` (a job with this id
    exists; ``existing_state`` says where it is) or ``"completed"`` (it already
    ran; ``result`` holds the cached result).
    """

    status: Literal["queued", "duplicate", "completed"]
    job_id: str
    existing_state: JobState | None = None
    result: R | None = None


class JobOptions(TypedDict, total=False):
    """Per-job options of ``enqueue``, ``enqueue_many`` and ``enqueue_and_wait``; each defaults to the queue's.

    ``max_attempts``: total tries. ``result_ttl``: seconds the result or error
    (and the dedup entry) live. ``delay`` (seconds) or ``run_at`` (an aware
    datetime): when the job falls due. ``priority``: -1000..1000, higher is
    claimed first. ``job_timeout``: seconds one attempt may run.
    """

    max_attempts: int
    result_ttl: float | timedelta
    delay: float | timedelta
    run_at: datetime
    priority: int
    job_timeout: float | timedelta


CancelResult = Literal["cancelled", "not_found", "processing", "completed"]
"""What ``Queue.cancel`` did (see the README's cancel table)."""

UpdateTtlResult = Literal["updated", "not_found", "not_terminal", "missing_payload"]
"""What ``Queue.update_result_ttl`` did."""


@dataclass(frozen=True, slots=True)
class JobStatus(Generic[R]):
    """A snapshot of one job, as ``Queue.get_status`` returns it.

    ``progress`` is the last value the handler passed to ``job.report_progress``
    (decoded with the result serde), or None.
    """

    id: str
    state: JobState
    created_at: datetime
    attempts: int
    result: R | None = None
    error: dict[str, Any] | None = field(default=None)
    progress: Any = None
