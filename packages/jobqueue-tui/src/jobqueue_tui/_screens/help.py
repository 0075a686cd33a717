"""The help screen: what the dashboard shows and every key binding."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

__all__ = ["HelpScreen"]

_ABOUT = (
    "Counts and throughput update live from the storage's events, with a slow "
    "periodic refresh as a fallback. Click a state in the counts bar to filter. "
    "The table holds one page of jobs, newest first; sorting applies within the page."
)

_KEYS = [
    ("enter, click", "open the job under the cursor"),
    ("/", "search by id prefix (escape: back to the table)"),
    ("f", "filter by state (cycles; or click a count)"),
    ("s", "sort the page by created / updated time"),
    ("] [", "next / previous page"),
    ("e", "live event log"),
    ("g", "switch queue (when the storage has several)"),
    ("t", "light / dark theme"),
    ("?", "this help"),
    ("escape", "close a screen or dialog"),
    ("q", "quit"),
]

_ACTIONS = [
    ("c", "cancel the selected queued or failing job"),
    ("r", "retry the selected failed job"),
    ("p", "purge every completed and failed job of the queue"),
]


class HelpScreen(ModalScreen[None]):
    """Key bindings and what the panels mean."""

    BINDINGS = [  # noqa: RUF012 (Textual reads this class attribute)
        Binding("escape,q,question_mark", "close", "Close"),
    ]

    def __init__(self, *, read_only: bool) -> None:
        super().__init__()
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog", classes="dialog"):
            yield Static(Text("jobqueue dashboard", style="bold"), id="help-title")
            yield Static(_ABOUT, id="help-about")
            yield Static(_keys_table(_KEYS), id="help-keys")
            if self.read_only:
                yield Static(Text("Read-only: cancel, retry and purge are disabled.", style="italic"))
            else:
                yield Static(Text("Actions (each asks for confirmation)", style="bold"))
                yield Static(_keys_table(_ACTIONS), id="help-actions")

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)


def _keys_table(rows: list[tuple[str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True, min_width=12)
    table.add_column()
    for key, text in rows:
        table.add_row(key, text)
    return table
