"""Rich rendering of the CLI output; imported only when rich is installed."""

from __future__ import annotations

from collections.abc import Sequence

from rich import progress as rp
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .output import Output, Progress, looks_numeric, terminal_safe

__all__ = ["RichOutput"]


class _RateColumn(rp.ProgressColumn):
    """Live throughput of a task, in jobs per second."""

    def render(self, task: rp.Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} jobs/s", style="progress.data.speed")


class _RichProgress(Progress):
    def __init__(self, console: Console, tasks: Sequence[str], total: int) -> None:
        self._progress = rp.Progress(
            rp.TextColumn("{task.description:>9}"),
            rp.BarColumn(),
            rp.MofNCompleteColumn(),
            _RateColumn(),
            rp.TimeElapsedColumn(),
            console=console,
            speed_estimate_period=2.0,
        )
        self._ids = {name: self._progress.add_task(name, total=total) for name in tasks}
        self._progress.start()

    def advance(self, task: str, amount: int = 1) -> None:
        self._progress.advance(self._ids[task], amount)

    def close(self) -> None:
        self._progress.stop()


class RichOutput(Output):
    """Colours, tables and live progress bars through rich."""

    def __init__(self) -> None:
        super().__init__()
        self.console = Console(file=self.stdout, highlight=False)
        self.err_console = Console(file=self.stderr, highlight=False)

    def print(self, text: str = "", *, style: str | None = None) -> None:
        """One line on stdout; user text is never read as markup, its control characters are escaped."""
        self.console.print(Text(terminal_safe(text, multiline=True), style=style or ""), soft_wrap=True)

    def error(self, text: str) -> None:
        """One error line on stderr."""
        line = Text("jobqueue: error: ", style="bold red")
        line.append(terminal_safe(text))
        self.err_console.print(line, soft_wrap=True)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A rich table; numeric-looking columns are right-aligned."""
        # Strings given to a rich Table are read as markup: every one goes in as Text.
        table = Table(title=Text(terminal_safe(title)), title_justify="left", title_style="bold")
        for i, column in enumerate(columns):
            numeric = bool(rows) and all(looks_numeric(row[i]) for row in rows)
            table.add_column(Text(terminal_safe(column)), justify="right" if numeric else "left")
        for row in rows:
            table.add_row(*(Text(terminal_safe(cell)) for cell in row))
        self.console.print(table)

    def progress(self, tasks: Sequence[str], total: int) -> Progress:
        """Live progress bars with a rate column."""
        return _RichProgress(self.console, tasks, total)
