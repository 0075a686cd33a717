"""The schedules the live workers run: spec, time zone, next run (in how long, and when), last tick, workers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from jobqueue import ScheduleInfo, schedules_of
from jobqueue.storage import WorkerRecord
from rich.text import Text
from textual.widgets import DataTable

from .._format import format_age, format_moment
from .._safe import plain

__all__ = ["SchedulesPanel"]


class SchedulesPanel(DataTable[Text]):
    """Shown while a live worker runs a schedule; next runs are recomputed from the specs every second.

    A schedule is whatever the workers registered (``jobqueue.schedules_of``):
    names, expressions and worker ids are untrusted text.
    """

    def __init__(self, clock: Callable[[], int], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="none", zebra_stripes=False, show_cursor=False)
        self._clock = clock
        self._schedules: list[ScheduleInfo] = []
        self._next_runs: list[int] = []  # epoch ms, per schedule; recomputed once passed

    def on_mount(self) -> None:
        self.add_column("schedule", key="schedule")
        self.add_column("spec", key="spec")
        self.add_column("tz", key="timezone")
        self.add_column("next run", key="next")
        self.add_column("last tick", key="last")
        self.add_column("workers", key="workers")
        self.border_title = "schedules"
        self.set_interval(1.0, self._redraw)

    @property
    def schedules(self) -> list[ScheduleInfo]:
        """The schedules shown, by name."""
        return list(self._schedules)

    def show(self, workers: Sequence[WorkerRecord]) -> None:
        """Display the schedules of the live workers among ``workers`` (``Monitoring.list_workers``)."""
        self._schedules = schedules_of(workers, now=_moment(self._clock()))
        self._next_runs = [0] * len(self._schedules)
        self.display = bool(self._schedules)
        self._redraw()

    def _redraw(self) -> None:
        now = self._clock()
        self.clear()
        for index, info in enumerate(self._schedules):
            if self._next_runs[index] <= now:
                self._next_runs[index] = _ms(info.next_run(_moment(now)))
            next_run = self._next_runs[index]
            last = "-" if info.last_tick is None else format_moment(_ms(info.last_tick), now)
            self.add_row(
                plain(info.name, "bold"),
                plain(info.spec),
                plain(info.timezone),
                Text(f"{format_age(now - next_run)} · {format_moment(next_run, now)}"),
                Text(last),
                plain(f"{len(info.workers)} {', '.join(info.workers)}"),
                key=str(index),
            )
        self.border_subtitle = f"{len(self._schedules)}"


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)
