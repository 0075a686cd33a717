"""The jobs table: one page of jobs, sortable by time within the page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum

from jobqueue import JobState
from jobqueue.storage import JobRecord
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from .._format import envelope_of, format_clock, one_line
from .._safe import plain

__all__ = ["JobsTable", "SortOrder"]

STATE_STYLES = {
    JobState.QUEUED: "cyan",
    JobState.PROCESSING: "bold yellow",
    JobState.FAILING: "magenta",
    JobState.COMPLETED: "green",
    JobState.FAILED: "bold red",
}


class SortOrder(StrEnum):
    """How the rows of a page are ordered (the storage returns newest first)."""

    CREATED_DESC = "created ▼"
    CREATED_ASC = "created ▲"
    UPDATED_DESC = "updated ▼"
    UPDATED_ASC = "updated ▲"

    def next(self) -> SortOrder:
        """The order after this one, cycling."""
        orders = list(SortOrder)
        return orders[(orders.index(self) + 1) % len(orders)]

    def sort(self, records: Sequence[JobRecord]) -> list[JobRecord]:
        """``records`` in this order (stable, id as tie-breaker)."""
        by_updated = self in (SortOrder.UPDATED_DESC, SortOrder.UPDATED_ASC)
        descending = self in (SortOrder.CREATED_DESC, SortOrder.UPDATED_DESC)
        return sorted(
            records,
            key=lambda r: ((r.updated_at if by_updated else r.created_at), r.id),
            reverse=descending,
        )


class JobsTable(DataTable[Text]):
    """Rows of jobs keyed by job id; the cursor stays on the same job across refreshes."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.records: dict[str, JobRecord] = {}
        self.order = SortOrder.CREATED_DESC

    def on_mount(self) -> None:
        self.add_column("id", key="id", width=22)
        self.add_column("state", key="state", width=10)
        self.add_column("try", key="try", width=5)
        self.add_column("progress", key="progress", width=12)
        self.add_column(self._label("created"), key="created", width=9)
        self.add_column(self._label("updated"), key="updated", width=9)

    @property
    def selected_id(self) -> str | None:
        """The id of the job under the cursor, if any."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return key.value

    @property
    def selected(self) -> JobRecord | None:
        """The record under the cursor, if any."""
        job_id = self.selected_id
        return None if job_id is None else self.records.get(job_id)

    def show(self, records: Sequence[JobRecord]) -> None:
        """Replace the rows with ``records``, keeping the cursor on the same job if it is still there."""
        keep = self.selected_id
        self.records = {r.id: r for r in records}
        self.clear()
        for record in self.order.sort(records):
            self.add_row(*self._cells(record), key=record.id)
        if keep is not None and keep in self.records:
            self.move_cursor(row=self.get_row_index(keep), animate=False, scroll=True)

    def set_progress(self, job_id: str, data: bytes) -> None:
        """Show a progress value reported for ``job_id``, if it is on this page."""
        record = self.records.get(job_id)
        if record is None:
            return
        self.records[job_id] = replace(record, progress=data)
        self.update_cell(job_id, "progress", _progress_cell(data))

    def set_order(self, order: SortOrder) -> None:
        """Order the rows of the page by ``order``."""
        self.order = order
        for name in ("created", "updated"):
            self.columns[ColumnKey(name)].label = Text(self._label(name))
        self.show(list(self.records.values()))

    def _label(self, column: str) -> str:
        return self.order.value if self.order.value.startswith(column) else column

    @staticmethod
    def _cells(record: JobRecord) -> tuple[Text, ...]:
        envelope = envelope_of(record)
        tries = f"{record.attempts}/{envelope.max_attempts}" if envelope else f"{record.attempts}/?"
        return (
            plain(record.id, overflow="ellipsis", no_wrap=True),
            Text(record.state.value, style=STATE_STYLES[record.state]),
            Text(tries, justify="right"),
            _progress_cell(record.progress),
            Text(format_clock(record.created_at)),
            Text(format_clock(record.updated_at)),
        )


def _progress_cell(data: bytes | None) -> Text:
    return plain(one_line(data), overflow="ellipsis", no_wrap=True)
