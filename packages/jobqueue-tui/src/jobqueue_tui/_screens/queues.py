"""The queue switcher: pick one of the storage's namespaces."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from .._safe import plain

__all__ = ["QueueScreen"]


class QueueScreen(ModalScreen[str | None]):
    """A list of namespaces; dismisses with the chosen name, or None."""

    BINDINGS = [  # noqa: RUF012 (Textual reads this class attribute)
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, names: Sequence[str], current: str) -> None:
        super().__init__()
        self.names = list(names)
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="queue-dialog", classes="dialog"):
            yield Label("Switch queue")
            # A queue name is anyone's string: shown as plain text, never as markup.
            options = [
                Option(plain(f"{n}  (watching)" if n == self.current else n), id=n) for n in self.names
            ]
            yield OptionList(*options, id="queue-list")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if self.current in self.names:
            options.highlighted = self.names.index(self.current)
        options.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_close(self) -> None:
        """Keep the current queue."""
        self.dismiss(None)
