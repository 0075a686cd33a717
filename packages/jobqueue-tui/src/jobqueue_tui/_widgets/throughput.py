"""Completed and failed jobs per second as two sparklines."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline

from .._latency import Latency, format_percentiles
from .._throughput import Throughput

__all__ = ["ThroughputPanel"]


class ThroughputPanel(Vertical):
    """Throughput over the tracker's window, and processing time percentiles, redrawn every second."""

    def __init__(
        self,
        throughput: Throughput,
        clock: Callable[[], int],
        latency: Latency | None = None,
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._throughput = throughput
        self._clock = clock
        self._latency = latency

    def compose(self) -> ComposeResult:
        with Horizontal(classes="rate-row"):
            yield Label("", id="rate-completed", classes="rate-label")
            yield Sparkline([], id="spark-completed")
        with Horizontal(classes="rate-row"):
            yield Label("", id="rate-failed", classes="rate-label")
            yield Sparkline([], id="spark-failed")

    def on_mount(self) -> None:
        self.border_title = f"throughput, last {self._throughput.window_s // 60} min"
        self.redraw()
        self.set_interval(1.0, self.redraw)

    def redraw(self) -> None:
        """Show the counts up to now."""
        now = self._clock()
        completed, failed = self._throughput.series(now)
        done_rate, failed_rate = self._throughput.rate(now)
        self.query_one("#spark-completed", Sparkline).data = completed
        self.query_one("#spark-failed", Sparkline).data = failed
        self.query_one("#rate-completed", Label).update(f"done {done_rate:6.1f}/s")
        self.query_one("#rate-failed", Label).update(f"fail {failed_rate:6.1f}/s")
        if self._latency is not None:
            # In the bottom border, under the sparklines: no row of the jobs table is given up for it.
            self.border_subtitle = format_percentiles(self._latency.percentiles(now))
