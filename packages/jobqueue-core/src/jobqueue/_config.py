"""Validated settings of a ``Queue``, in storage units (milliseconds)."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ._backoff import RetryBackoff, backoff_from
from ._durations import Duration, to_ms
from ._serde import Serde
from ._telemetry import Observer, default_observer

__all__ = ["QueueConfig", "default_worker_id", "validate_attempts"]

AfterExecution = Callable[[Any], Awaitable[None] | None]


def default_worker_id() -> str:
    """A readable, unique worker id: ``host-pid-random``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def validate_attempts(value: object, name: str = "max_attempts") -> int:
    """A positive ``int`` (bool refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """Every ``Queue`` option after validation."""

    concurrency: int
    worker_id: str
    max_attempts: int
    retry_delay: Callable[[int], float]
    block_timeout_ms: int
    visibility_timeout_ms: int
    job_timeout_ms: int | None
    result_ttl_ms: int
    payload_serde: Serde[Any]
    result_serde: Serde[Any]
    after_execution: AfterExecution | None
    logger: logging.Logger
    observer: Observer | None = None

    @classmethod
    def build(
        cls,
        *,
        concurrency: int,
        worker_id: str | None,
        max_attempts: int,
        retry_backoff: RetryBackoff,
        block_timeout: Duration,
        visibility_timeout: Duration,
        job_timeout: Duration | None,
        result_ttl: Duration,
        payload_serde: Serde[Any],
        result_serde: Serde[Any],
        after_execution: AfterExecution | None,
        logger: logging.Logger | None,
        instrument: bool = True,
    ) -> QueueConfig:
        """Validate the options; raise ``ValueError``/``TypeError`` naming the bad one."""
        validate_attempts(concurrency, "concurrency")
        if worker_id is not None and (not isinstance(worker_id, str) or not worker_id):
            raise ValueError("worker_id must be a non-empty str")
        for name, serde in (("payload_serde", payload_serde), ("result_serde", result_serde)):
            methods = (getattr(serde, "serialize", None), getattr(serde, "deserialize", None))
            if not all(callable(method) for method in methods):
                raise TypeError(f"{name} must have serialize() and deserialize() methods")
        if after_execution is not None and not callable(after_execution):
            raise TypeError("after_execution must be callable")
        if not isinstance(instrument, bool):
            raise TypeError(f"instrument must be a bool, not {type(instrument).__name__}")
        return cls(
            concurrency=concurrency,
            worker_id=worker_id or default_worker_id(),
            max_attempts=validate_attempts(max_attempts),
            retry_delay=backoff_from(retry_backoff),
            block_timeout_ms=to_ms(block_timeout, "block_timeout"),
            visibility_timeout_ms=to_ms(visibility_timeout, "visibility_timeout"),
            job_timeout_ms=None if job_timeout is None else to_ms(job_timeout, "job_timeout"),
            result_ttl_ms=to_ms(result_ttl, "result_ttl"),
            payload_serde=payload_serde,
            result_serde=result_serde,
            after_execution=after_execution,
            logger=logger or logging.getLogger("jobqueue"),
            observer=default_observer() if instrument else None,
        )
