"""Registered workers: id, heartbeat age, in-flight jobs; lapsed ones marked."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from jobqueue.storage import WorkerRecord
from rich.text import Text
from textual.widgets import DataTable

from .._format import format_age
from .._safe import plain

__all__ = ["WorkersPanel"]


class WorkersPanel(DataTable[Text]):
    """The workers of the watched queue; heartbeat ages are redrawn every second."""

    def __init__(self, clock: Callable[[], int], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="none", zebra_stripes=False, show_cursor=False)
        self._clock = clock
        self._records: list[WorkerRecord] = []

    def on_mount(self) -> None:
        self.add_column("worker", key="worker")
        self.add_column("beat", key="beat", width=8)
        self.add_column("jobs", key="jobs")
        self.border_title = "workers"
        self.set_interval(1.0, self._redraw)

    @property
    def records(self) -> list[WorkerRecord]:
        """The workers shown, lapsed ones last."""
        return list(self._records)

    def show(self, workers: Sequence[WorkerRecord]) -> None:
        """Display a new list of workers."""
        now = self._clock()
        self._records = sorted(workers, key=lambda w: (w.expires_at < now, w.id))
        self._redraw()

    def _redraw(self) -> None:
        now = self._clock()
        self.clear()
        for worker in self._records:
            lapsed = worker.expires_at < now
            style = "bold red" if lapsed else ""
            name = plain(("✗ " if lapsed else "") + worker.id, style)
            # A lapsed worker whose registration is gone still shows with the jobs it holds.
            age = format_age(max(0, now - worker.last_seen)) if worker.last_seen > 0 else "-"
            beat = Text(age, style=style, justify="right")
            jobs = plain(str(len(worker.jobs)) + (f" {', '.join(worker.jobs)}" if worker.jobs else ""))
            if lapsed:
                jobs.append(" lapsed", "bold red")
            self.add_row(name, beat, jobs, key=worker.id)
        self.border_subtitle = f"{len(self._records)}"
