"""The detail screen of one job: payload, result or error with traceback, attempts, timestamps."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, cast

from jobqueue import JobQueueError, JobState
from jobqueue.storage import JobRecord
from rich.console import RenderableType
from rich.json import JSON
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from .. import _actions
from .._format import (
    DecodedBytes,
    decode_bytes,
    decode_error,
    envelope_of,
    format_age,
    format_timestamp,
    one_line,
)
from .._messages import DataChanged, ProgressReported
from .._safe import notify, plain
from .._widgets.jobs import STATE_STYLES

if TYPE_CHECKING:
    from .._app import DashboardApp

__all__ = ["DetailScreen"]

_WRITE_ACTIONS = frozenset({"cancel_job", "retry_job"})


class DetailScreen(Screen[None]):
    """Everything the storage holds about one job, kept live by storage events."""

    BINDINGS = [  # noqa: RUF012 (Textual reads this class attribute)
        Binding("escape,b", "back", "Back"),
        Binding("c", "cancel_job", "Cancel"),
        Binding("r", "retry_job", "Retry"),
    ]

    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.record: JobRecord | None = None
        # Kept by reference: a load that resumes during teardown must not query a vanishing DOM.
        self._facts_view = Static(id="detail-facts")
        self._payload_view = Static(id="detail-payload", classes="section")
        self._outcome_view = Static(id="detail-outcome", classes="section")

    @property
    def dashboard(self) -> DashboardApp:
        """The app, with its storage and settings."""
        return cast("DashboardApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static(plain(f"job {self.job_id}", "bold"), id="detail-title")
        with VerticalScroll(id="detail-body"):
            yield self._facts_view
            yield self._payload_view
            yield self._outcome_view
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#detail-body").focus()
        self.load()

    @work(exclusive=True, group="detail")
    async def load(self) -> None:
        """Read the job again and show it."""
        try:
            record = await self.dashboard.storage.get(self.job_id)
        except JobQueueError as exc:
            notify(self, f"cannot read job {self.job_id}: {exc}", severity="error")
            return
        self.record = record
        self._show(record)

    @on(DataChanged)
    def _data_changed(self, event: DataChanged) -> None:
        if event.concerns(self.job_id):
            self.load()

    @on(ProgressReported)
    def _progress_reported(self, event: ProgressReported) -> None:
        if event.job_id == self.job_id and self.record is not None:
            self.record = replace(self.record, progress=event.data)
            self._show(self.record)

    def _show(self, record: JobRecord | None) -> None:
        facts, payload, outcome = self._facts_view, self._payload_view, self._outcome_view
        if record is None:
            facts.update(Text("This job is gone: cancelled, purged, or its result expired.", style="italic"))
            payload.update("")
            outcome.update("")
            return
        facts.update(self._facts(record))
        envelope = envelope_of(record)
        if envelope is None:
            payload.update(_section("message (unreadable envelope)", decode_bytes(record.message)))
        else:
            payload.update(_section("payload", decode_bytes(envelope.payload)))
        if record.error is not None:
            outcome.update(_error_section(record.error, final=record.state is JobState.FAILED))
        elif record.result is not None:
            outcome.update(_section("result", decode_bytes(record.result)))
        else:
            outcome.update(Text("no result yet", style="dim italic"))

    def _facts(self, record: JobRecord) -> Table:
        now = self.dashboard.clock()
        envelope = envelope_of(record)
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()

        def when(ms: int | None) -> str:
            return "-" if ms is None else f"{format_timestamp(ms)}  ({_relative(now - ms)})"

        table.add_row("state", Text(record.state.value, style=STATE_STYLES[record.state]))
        max_attempts = str(envelope.max_attempts) if envelope else "?"
        table.add_row("attempts", f"{record.attempts} of {max_attempts}")
        if record.progress is not None:
            table.add_row("progress", plain(one_line(record.progress, limit=2000)))
        table.add_row("worker", plain(record.worker_id or "-"))  # a str cell would be read as markup
        table.add_row("created", when(record.created_at))
        table.add_row("updated", when(record.updated_at))
        if record.run_at is not None:
            table.add_row("runs at", when(record.run_at))
        if record.lease_until is not None:
            table.add_row("lease until", when(record.lease_until))
        if record.expires_at is not None:
            table.add_row("expires", when(record.expires_at))
        if envelope is not None:
            table.add_row("result ttl", format_age(envelope.result_ttl))
        return table

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide cancel and retry in read-only mode."""
        return not (action in _WRITE_ACTIONS and self.dashboard.read_only)

    def action_back(self) -> None:
        """Back to the main screen."""
        self.dismiss(None)

    @work(group="actions")
    async def action_cancel_job(self) -> None:
        """Cancel this job (asks first)."""
        await _actions.cancel_job(self.dashboard, self.job_id)

    @work(group="actions")
    async def action_retry_job(self) -> None:
        """Retry this failed job (asks first)."""
        await _actions.retry_job(self.dashboard, self.job_id)


def _relative(delta_ms: int) -> str:
    return format_age(delta_ms) if delta_ms < 0 else f"{format_age(delta_ms)} ago"


def _section(title: str, decoded: DecodedBytes) -> RenderableType:
    table = Table.grid()
    table.add_row(Text(f"{title} ({decoded.kind})", style="bold underline"))
    if decoded.kind in ("json", "msgpack"):
        table.add_row(JSON(decoded.text))
    else:
        table.add_row(plain(decoded.text or "(empty)", multiline=True))
    return table


def _error_section(data: bytes, *, final: bool) -> RenderableType:
    error = decode_error(data)
    table = Table.grid()
    title = "error" if final else "last error (a retry is pending)"
    table.add_row(Text(title, style="bold underline"))
    table.add_row(Text.assemble(plain(f"{error.type}: ", "bold red"), plain(error.message, multiline=True)))
    if error.code:
        table.add_row(plain(f"code {error.code}", "dim"))
    if error.traceback:
        table.add_row(plain(error.traceback.rstrip(), "dim", multiline=True))
    return table
