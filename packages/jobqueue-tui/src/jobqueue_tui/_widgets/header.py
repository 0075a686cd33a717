"""The one-line header: storage URL (password masked), queue, mode and connection status."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from .._safe import printable

__all__ = ["HeaderBar"]


class HeaderBar(Static):
    """Shows where the dashboard looks and whether the storage answers."""

    def __init__(self, url: str, *, read_only: bool, id: str | None = None) -> None:
        super().__init__(id=id)
        self._url = url
        self._queue = ""
        self._read_only = read_only
        self._problem: str | None = None

    def on_mount(self) -> None:
        self._render_text()

    def set_queue(self, name: str) -> None:
        """Show the namespace being watched."""
        self._queue = name
        self._render_text()

    def set_problem(self, problem: str | None) -> None:
        """Show a storage problem (None: the storage answers)."""
        if problem != self._problem:
            self._problem = problem
            self.set_class(problem is not None, "-problem")
            self._render_text()

    def _render_text(self) -> None:
        # The queue comes first: a long URL is what gets cut at the edge.
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("jobqueue", "bold")
        text.append("  queue ", "dim")
        text.append(printable(self._queue), "bold")
        if self._read_only:
            text.append("  read-only", "italic")
        if self._problem is not None:
            text.append(f"  ⚠ {printable(self._problem)}", "bold")
        text.append(f"  {printable(self._url)}")
        self.update(text)
