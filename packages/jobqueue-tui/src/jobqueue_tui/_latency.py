"""Processing time percentiles (p50, p95) over a sliding window, from storage events.

A job's processing time is the ``at`` of its ``completed`` or ``failed`` event
minus the ``at`` of the ``processing`` event that started the attempt: both
stamped by the storage's clock, so the two ends are comparable. The window
itself is measured on the dashboard's clock (when the end event arrived),
like the throughput, so that a skewed server clock cannot empty it.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

from jobqueue.storage import EventKind, StorageEvent

__all__ = ["Latency", "format_percentiles", "percentile"]

_ENDS = frozenset({EventKind.COMPLETED, EventKind.FAILED})
# An attempt that ends another way is not a processing time: forget its start.
_ABANDONS = frozenset({EventKind.FAILING, EventKind.REQUEUED, EventKind.STALLED, EventKind.CANCELLED})


def percentile(sorted_values: list[int], fraction: float) -> int:
    """The nearest-rank percentile of a non-empty ascending list (``fraction`` 0.5 for p50)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class Latency:
    """Processing times of the jobs that finished in the last ``window_ms``.

    Args:
        window_ms: how far back durations count (dashboard clock).
        max_started: attempts in progress remembered at most (the oldest are forgotten),
            so that starts whose end never arrives cannot grow without bound.
    """

    def __init__(self, window_ms: int = 300_000, max_started: int = 10_000) -> None:
        if window_ms < 1:
            raise ValueError(f"window_ms must be >= 1, got {window_ms}")
        self.window_ms = window_ms
        self._max_started = max_started
        self._started: OrderedDict[str, int] = OrderedDict()  # job id -> storage ms
        self._durations: deque[tuple[int, int]] = deque()  # (arrived, duration ms), arrival order

    def record(self, event: StorageEvent, now_ms: int) -> None:
        """Take one event, arrived at ``now_ms`` (dashboard clock)."""
        if event.kind is EventKind.PROCESSING:
            self._started.pop(event.job_id, None)
            self._started[event.job_id] = event.at
            while len(self._started) > self._max_started:
                self._started.popitem(last=False)
        elif event.kind in _ENDS:
            start = self._started.pop(event.job_id, None)
            if start is not None and event.at >= start:
                self._durations.append((now_ms, event.at - start))
            self._trim(now_ms)
        elif event.kind in _ABANDONS:
            self._started.pop(event.job_id, None)

    def percentiles(self, now_ms: int) -> tuple[int, int] | None:
        """p50 and p95 in milliseconds of the durations in the window, or None without any."""
        self._trim(now_ms)
        if not self._durations:
            return None
        values = sorted(duration for _, duration in self._durations)
        return percentile(values, 0.50), percentile(values, 0.95)

    def clear(self) -> None:
        """Forget everything (the dashboard switched queues)."""
        self._started.clear()
        self._durations.clear()

    def _trim(self, now_ms: int) -> None:
        while self._durations and self._durations[0][0] <= now_ms - self.window_ms:
            self._durations.popleft()


def format_duration(ms: int) -> str:
    """``12 ms`` below ten seconds, else ``12.3 s``."""
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def format_percentiles(values: tuple[int, int] | None) -> str:
    """``p50 12 ms · p95 40 ms``, or ``—`` without data."""
    if values is None:
        return "—"
    p50, p95 = values
    return f"p50 {format_duration(p50)} · p95 {format_duration(p95)}"
