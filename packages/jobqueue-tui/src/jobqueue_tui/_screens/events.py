"""The live event log of the watched queue, newest at the bottom."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from jobqueue.storage import EventKind
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static

from .._format import format_timestamp
from .._messages import DataChanged, QueueSwitched
from .._safe import plain, printable

if TYPE_CHECKING:
    from .._app import DashboardApp, LoggedEvent

__all__ = ["EventsScreen"]

_KIND_STYLES = {
    EventKind.COMPLETED: "green",
    EventKind.FAILED: "bold red",
    EventKind.FAILING: "magenta",
    EventKind.STALLED: "bold yellow",
    EventKind.CANCELLED: "dim",
    EventKind.WORKER_JOINED: "cyan",
    EventKind.WORKER_LEFT: "cyan",
}


class EventsScreen(Screen[None]):
    """Every storage event the dashboard heard, as it arrives (the last ones kept in memory)."""

    BINDINGS = [  # noqa: RUF012 (Textual reads this class attribute)
        Binding("escape,e", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._shown = 0
        self._log = RichLog(id="event-log", max_lines=2000, wrap=False, markup=False, auto_scroll=True)

    @property
    def dashboard(self) -> DashboardApp:
        """The app, with its event log."""
        return cast("DashboardApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static(plain(f"events of queue {self.dashboard.storage.name}"), id="events-title")
        yield self._log
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._catch_up()

    @on(DataChanged)
    def _data_changed(self) -> None:
        self._catch_up()

    @on(QueueSwitched)
    def _queue_switched(self, event: QueueSwitched) -> None:
        self.query_one("#events-title", Static).update(plain(f"events of queue {event.name}"))
        self._log.clear()
        self._shown = self.dashboard.events_total - len(self.dashboard.event_log)
        self._catch_up()

    def _catch_up(self) -> None:
        app = self.dashboard
        missed = min(app.events_total - self._shown, len(app.event_log))
        if missed <= 0:
            return
        for entry in list(app.event_log)[-missed:]:
            self._log.write(_line(entry))
        self._shown = app.events_total

    def action_back(self) -> None:
        """Back to the main screen."""
        self.dismiss(None)


def _line(entry: LoggedEvent) -> Text:
    _, event = entry
    line = Text(format_timestamp(event.at)[11:], style="dim")
    line.append(f"  {event.kind.value:<10}", _KIND_STYLES.get(event.kind, ""))
    if not event.job_id:  # a worker event: about the worker alone
        line.append(f"  {printable(event.worker_id or '')}")
        return line
    line.append(f"  {printable(event.job_id)}")
    if event.worker_id:
        line.append(f"  by {printable(event.worker_id)}", "dim")
    return line
