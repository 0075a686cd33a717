"""Retry delays: exponential backoff with jitter, capped."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["Backoff", "RetryBackoff", "backoff_from"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry ``n`` (1-based, the attempt that failed): ``base * factor**(n-1)``.

    Capped at ``max`` seconds, then spread by ``jitter``: with ``jitter=0.5``
    the delay is drawn uniformly from ``[d * 0.5, d]`` ("equal jitter"), so
    retries of many jobs failing together do not arrive together.
    """

    base: float = 1.0
    factor: float = 2.0
    max: float = 300.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        for field_name in ("base", "factor", "max", "jitter"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"Backoff.{field_name} must be a finite number, got {value!r}")
        if self.base < 0 or self.max < 0:
            raise ValueError("Backoff.base and Backoff.max must be >= 0")
        if self.factor < 1:
            raise ValueError(f"Backoff.factor must be >= 1, got {self.factor!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Backoff.jitter must be between 0 and 1, got {self.jitter!r}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        exponent = max(attempt - 1, 0)
        # Compare in log space: factor**exponent overflows for large attempts.
        if self.base == 0:
            raw = 0.0
        elif exponent * math.log(self.factor) + math.log(self.base) >= math.log(self.max or 1e-300):
            raw = self.max
        else:
            raw = self.base * self.factor**exponent
        raw = min(raw, self.max)
        low = raw * (1 - self.jitter)
        return (rng or random).uniform(low, raw)


RetryBackoff = float | int | timedelta | Backoff | Callable[[int], float]
"""What ``retry_backoff=`` accepts: a base delay in seconds, a ``Backoff``, or ``f(attempt) -> seconds``."""


def backoff_from(value: RetryBackoff) -> Callable[[int], float]:
    """Normalise ``retry_backoff`` into ``f(attempt) -> seconds``, validating it."""
    if isinstance(value, Backoff):
        return value.delay
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"retry_backoff must be a finite number of seconds >= 0, got {value!r}")
        return Backoff(base=float(value)).delay
    if callable(value):
        return value
    raise TypeError(
        f"retry_backoff must be seconds, a Backoff or a callable(attempt), not {type(value).__name__}"
    )
