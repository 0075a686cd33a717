"""Counts per state; clicking a state filters the jobs table."""

from __future__ import annotations

from jobqueue import JobState
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.events import Click
from textual.widgets import Static

from .._messages import StateFilterChosen

__all__ = ["CountsBar", "StateCount", "short_number"]


def short_number(value: int) -> str:
    """An exact count up to 99,999; above, ``123.4k`` or ``1.2M`` so that the bar fits 80 columns."""
    if value < 100_000:
        return str(value)
    if value < 10_000_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.1f}M"


class StateCount(Static):
    """One state and its count; ``state`` None is the total."""

    def __init__(self, state: JobState | None) -> None:
        name = state.value if state is not None else "all"
        super().__init__(id=f"count-{name}", classes=f"state-count -{name}")
        self.state = state
        self.label = name
        self.count = 0

    def on_mount(self) -> None:
        self.show(0)

    def show(self, count: int) -> None:
        """Display ``count``."""
        self.count = count
        self.update(f"{self.label} [b]{short_number(count)}[/b]")

    def on_click(self, event: Click) -> None:
        event.stop()
        self.post_message(StateFilterChosen(self.state))


class CountsBar(Horizontal):
    """The live counts of the watched queue, one clickable item per state."""

    def compose(self) -> ComposeResult:
        yield StateCount(None)
        for state in JobState:
            yield StateCount(state)

    def show(self, counts: dict[JobState, int]) -> None:
        """Display new counts."""
        for item in self.query(StateCount):
            item.show(sum(counts.values()) if item.state is None else counts.get(item.state, 0))

    def mark_filter(self, state: JobState | None) -> None:
        """Highlight the state the jobs table is filtered by."""
        for item in self.query(StateCount):
            item.set_class(item.state is state, "-active")
