"""Completed and failed jobs per second, counted from storage events."""

from __future__ import annotations

from collections import deque

from jobqueue.storage import EventKind

__all__ = ["Throughput"]


class Throughput:
    """Per-second counts of ``completed`` and ``failed`` events over a sliding window.

    Events are bucketed by the dashboard's clock when they arrive, not by the
    storage's timestamp, so that a skewed server clock cannot push them out of
    the window.
    """

    def __init__(self, window_s: int = 120) -> None:
        if window_s < 1:
            raise ValueError(f"window_s must be >= 1, got {window_s}")
        self.window_s = window_s
        self._buckets: deque[tuple[int, int, int]] = deque()  # (second, completed, failed)

    def record(self, kind: EventKind, now_ms: int) -> None:
        """Count one event; only ``completed`` and ``failed`` count."""
        if kind is EventKind.COMPLETED:
            done, failed = 1, 0
        elif kind is EventKind.FAILED:
            done, failed = 0, 1
        else:
            return
        second = now_ms // 1000
        if self._buckets and self._buckets[-1][0] == second:
            _, d, f = self._buckets[-1]
            self._buckets[-1] = (second, d + done, f + failed)
        else:
            self._buckets.append((second, done, failed))
        self._trim(second)

    def series(self, now_ms: int) -> tuple[list[float], list[float]]:
        """Completed and failed counts for each of the last ``window_s`` seconds, oldest first."""
        now_s = now_ms // 1000
        self._trim(now_s)
        completed = [0.0] * self.window_s
        failed = [0.0] * self.window_s
        start = now_s - self.window_s + 1
        for second, d, f in self._buckets:
            if start <= second <= now_s:
                completed[second - start] = float(d)
                failed[second - start] = float(f)
        return completed, failed

    def rate(self, now_ms: int, over_s: int = 10) -> tuple[float, float]:
        """Average completed and failed per second over the last ``over_s`` full seconds."""
        completed, failed = self.series(now_ms)
        # The current second is still filling up: average the full ones before it.
        span = max(1, min(over_s, self.window_s - 1))
        return sum(completed[-span - 1 : -1]) / span, sum(failed[-span - 1 : -1]) / span

    def totals(self) -> tuple[int, int]:
        """Completed and failed events counted in the window."""
        return sum(b[1] for b in self._buckets), sum(b[2] for b in self._buckets)

    def clear(self) -> None:
        """Forget every count (the dashboard switched queues)."""
        self._buckets.clear()

    def _trim(self, now_s: int) -> None:
        while self._buckets and self._buckets[0][0] <= now_s - self.window_s:
            self._buckets.popleft()
