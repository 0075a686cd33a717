"""The processing time percentiles: pure computation from events, over a sliding window."""

from __future__ import annotations

import pytest
from jobqueue.storage import EventKind, StorageEvent
from jobqueue_tui._latency import Latency, format_percentiles, percentile


def event(kind: EventKind, job_id: str, at: int) -> StorageEvent:
    return StorageEvent(kind, job_id, at, worker_id="w")


def run(latency: Latency, job_id: str, start: int, end: int, *, arrived: int, failed: bool = False) -> None:
    latency.record(event(EventKind.PROCESSING, job_id, start), arrived)
    latency.record(event(EventKind.FAILED if failed else EventKind.COMPLETED, job_id, end), arrived)


def test_percentile_is_the_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.50) == 50
    assert percentile(values, 0.95) == 95
    assert percentile([7], 0.95) == 7
    assert percentile([10, 20], 0.5) == 10
    with pytest.raises(ValueError, match="no values"):
        percentile([], 0.5)


def test_no_data_shows_a_dash() -> None:
    latency = Latency()
    assert latency.percentiles(1_000) is None
    assert format_percentiles(None) == "—"


def test_completed_and_failed_jobs_count_by_storage_timestamps() -> None:
    latency = Latency()
    for i in range(19):
        run(latency, f"ok-{i}", 1_000, 1_010 + i, arrived=5_000)
    run(latency, "slow", 1_000, 1_400, arrived=5_000, failed=True)
    p50, p95 = latency.percentiles(5_000) or (0, 0)
    assert (p50, p95) == (19, 28)  # 20 durations: 10..28 and 400: ranks 10 and 19
    assert format_percentiles((p50, p95)) == "p50 19 ms · p95 28 ms"


def test_other_events_and_unmatched_ends_are_ignored() -> None:
    latency = Latency()
    latency.record(event(EventKind.COMPLETED, "never-started", 50), 100)  # started before we watched
    latency.record(event(EventKind.PROCESSING, "retried", 0), 100)
    latency.record(event(EventKind.FAILING, "retried", 30), 100)  # that attempt ended without a result
    latency.record(event(EventKind.COMPLETED, "retried", 500), 100)
    latency.record(event(EventKind.PROGRESS, "x", 10), 100)
    assert latency.percentiles(100) is None
    latency.record(event(EventKind.PROCESSING, "retried", 600), 100)  # a new attempt starts its own clock
    latency.record(event(EventKind.COMPLETED, "retried", 640), 100)
    assert latency.percentiles(100) == (40, 40)


def test_a_clock_going_backwards_gives_no_negative_duration() -> None:
    latency = Latency()
    run(latency, "skewed", 1_000, 900, arrived=0)
    assert latency.percentiles(0) is None


def test_durations_leave_the_window_by_the_dashboard_clock() -> None:
    latency = Latency(window_ms=60_000)
    run(latency, "old", 0, 100, arrived=10_000)
    run(latency, "new", 0, 20, arrived=50_000)
    assert latency.percentiles(50_000) == (20, 100)
    assert latency.percentiles(70_000) == (20, 20)  # "old" arrived more than a minute ago
    assert latency.percentiles(110_000) is None
    with pytest.raises(ValueError, match="window_ms"):
        Latency(window_ms=0)


def test_starts_are_bounded_and_cleared() -> None:
    latency = Latency(max_started=2)
    for job_id in ("a", "b", "c"):
        latency.record(event(EventKind.PROCESSING, job_id, 0), 0)
    latency.record(event(EventKind.COMPLETED, "a", 10), 0)  # "a" was forgotten, the oldest
    assert latency.percentiles(0) is None
    latency.record(event(EventKind.COMPLETED, "c", 10), 0)
    assert latency.percentiles(0) == (10, 10)
    latency.clear()
    assert latency.percentiles(0) is None


def test_long_durations_in_seconds() -> None:
    assert format_percentiles((9_999, 12_345)) == "p50 9999 ms · p95 12.3 s"
