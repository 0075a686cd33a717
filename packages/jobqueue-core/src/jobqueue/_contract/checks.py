"""Argument checks of the contract's public methods, run once before a primitive is called."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .._durations import validate_job_id
from . import rules
from .records import Finish, FinishKind, NewJob

__all__ = [
    "check_batch",
    "check_finish",
    "check_ids",
    "check_info",
    "check_ms",
    "check_new_job",
    "check_priority",
    "check_worker",
]


def check_ms(value: object, name: str, minimum: int = 0) -> int:
    """Check a duration in integer milliseconds.

    Raises:
        TypeError: not an int.
        ValueError: below ``minimum``.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int (milliseconds), not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_ids(job_ids: Iterable[str]) -> list[str]:
    if isinstance(job_ids, str | bytes):
        raise TypeError("job_ids must be a sequence of ids, not a single str")
    return [validate_job_id(job_id) for job_id in job_ids]


def check_worker(worker_id: object) -> str:
    if not isinstance(worker_id, str) or not worker_id:
        raise ValueError(f"worker_id must be a non-empty str, got {worker_id!r}")
    return worker_id


def check_info(info: object) -> bytes:
    if not isinstance(info, bytes):
        raise TypeError(f"info must be bytes, not {type(info).__name__}")
    if len(info) > rules.MAX_WORKER_INFO:
        raise ValueError(f"info must be at most {rules.MAX_WORKER_INFO} bytes, got {len(info)}")
    return info


def check_batch(items: Sequence[object], name: str) -> None:
    if not items:
        raise ValueError(f"{name} must not be empty")
    if len(items) > rules.MAX_BATCH:
        raise ValueError(f"{name} holds {len(items)} items; at most {rules.MAX_BATCH} per call")


def check_new_job(job: NewJob) -> NewJob:
    """Check one job to enqueue (id, message bytes, delay, priority)."""
    if not isinstance(job, NewJob):
        raise TypeError(f"expected a NewJob, not {type(job).__name__}")
    validate_job_id(job.id)
    if not isinstance(job.message, bytes):
        raise TypeError(f"message must be bytes, not {type(job.message).__name__}")
    check_ms(job.delay_ms, "delay_ms")
    check_priority(job.priority)
    return job


def check_priority(priority: object) -> int:
    """Check a job's priority: an int from ``rules.PRIORITY_MIN`` to ``rules.PRIORITY_MAX``."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be an int, not {type(priority).__name__}")
    if not rules.PRIORITY_MIN <= priority <= rules.PRIORITY_MAX:
        raise ValueError(
            f"priority must be between {rules.PRIORITY_MIN} and {rules.PRIORITY_MAX}, got {priority}"
        )
    return priority


def check_finish(outcome: Finish) -> Finish:
    if not isinstance(outcome, Finish):
        raise TypeError(f"expected a Finish, not {type(outcome).__name__}")
    validate_job_id(outcome.job_id)
    kind = FinishKind(outcome.kind)
    if kind is not FinishKind.RELEASE and not isinstance(outcome.data, bytes):
        raise TypeError(f"{kind.value} needs bytes data, not {type(outcome.data).__name__}")
    if kind is FinishKind.RETRY:
        check_ms(outcome.ms, "delay_ms")
    elif kind is not FinishKind.RELEASE:
        check_ms(outcome.ms, "ttl_ms", 1)
    return outcome
