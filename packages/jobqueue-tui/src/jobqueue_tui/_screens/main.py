"""The main screen: counts, throughput, workers, schedules and one page of jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from jobqueue import JobQueueError, JobState
from jobqueue.storage import WorkerRecord
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Label
from textual.worker import Worker

from .. import _actions
from .._messages import DataChanged, ProgressReported, QueueSwitched, StateFilterChosen
from .._safe import notify
from .._widgets.counts import CountsBar
from .._widgets.header import HeaderBar
from .._widgets.jobs import JobsTable, SortOrder
from .._widgets.schedules import SchedulesPanel
from .._widgets.throughput import ThroughputPanel
from .._widgets.workers import WorkersPanel
from .detail import DetailScreen
from .events import EventsScreen

if TYPE_CHECKING:
    from .._app import DashboardApp

__all__ = ["MainScreen"]

_FILTERS: list[JobState | None] = [None, *JobState]
_WRITE_ACTIONS = frozenset({"cancel_job", "retry_job", "purge"})
_WORKER_RETRIES = 8
_WORKER_RETRY_S = 0.5
"""A worker named by an event but not listed is looked for again this often, this many times."""


class MainScreen(Screen[None]):
    """Everything about the watched queue at a glance."""

    BINDINGS = [  # noqa: RUF012 (Textual reads this class attribute)
        Binding("slash", "search", "Search"),
        Binding("f", "cycle_filter", "Filter"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("right_square_bracket", "next_page", "Next"),
        Binding("left_square_bracket", "previous_page", "Prev", show=False),
        Binding("c", "cancel_job", "Cancel"),
        Binding("r", "retry_job", "Retry"),
        Binding("p", "purge", "Purge"),
        Binding("e", "events", "Events"),
        Binding("escape", "leave_search", "Back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        # Widgets are kept by reference: a refresh that resumes while the screen is being
        # torn down must not look them up in a DOM that is going away.
        app = self.dashboard
        self._header = HeaderBar(app.display_url, read_only=app.read_only, id="header")
        self._counts = CountsBar(id="counts")
        self._workers_panel = WorkersPanel(app.clock, id="workers")
        self._schedules_panel = SchedulesPanel(app.clock, id="schedules")
        self._search = Input(placeholder="/ search id prefix", id="search")
        self._pager = Label("", id="pager")
        self._table = JobsTable(id="jobs")
        self.state_filter: JobState | None = None
        self.prefix = ""
        self._cursors: list[str | None] = [None]
        self._next_cursor: str | None = None
        self._loader: Worker[None] | None = None
        self._follow_up = False
        self._worker_retries = 0

    @property
    def dashboard(self) -> DashboardApp:
        """The app, with its storage and settings."""
        return cast("DashboardApp", self.app)

    @property
    def page_number(self) -> int:
        """1 for the first page."""
        return len(self._cursors)

    def compose(self) -> ComposeResult:
        app = self.dashboard
        yield self._header
        yield self._counts
        with Horizontal(id="panels"):
            yield ThroughputPanel(app.throughput, app.clock, app.latency, id="throughput")
            yield self._workers_panel
        yield self._schedules_panel
        with Horizontal(id="toolbar"):
            yield self._search
            yield self._pager
        yield self._table
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._header.set_queue(self.dashboard.storage.name)
        self._counts.mark_filter(None)
        self._table.focus()
        self.reload()

    def on_screen_resume(self) -> None:
        self._storage_changed()

    # ------------------------------------------------------------------ data

    def reload(self) -> None:
        """Load again now, dropping a load in flight (what to show has changed)."""
        self._follow_up = False
        self._loader = self.refresh_data()

    def _storage_changed(self) -> None:
        # A load in flight is not cancelled for an event: under a steady stream of events
        # a slow storage would never finish one. One more load runs after it instead.
        if self._loader is not None and not self._loader.is_finished:
            self._follow_up = True
        else:
            self.reload()

    def _after_load(self) -> None:
        if self._follow_up:
            self.reload()

    @work(exclusive=True, group="refresh")
    async def refresh_data(self) -> None:
        """Load counts, workers (and their schedules), namespaces and the current page of jobs (never more than a page)."""
        try:
            await self._load()
        finally:
            self.call_later(self._after_load)

    async def _load(self) -> None:
        app = self.dashboard
        storage = app.storage
        admin = app.monitoring
        if admin is None:  # nothing to list: say so rather than fail on every refresh
            self._header.set_problem(app.no_monitoring)
            return
        try:
            counts, workers, namespaces, page = await asyncio.gather(
                admin.counts(),
                admin.list_workers(),
                admin.list_namespaces(),
                admin.list_jobs(
                    state=self.state_filter, prefix=self.prefix, cursor=self._cursors[-1], limit=app.page_size
                ),
            )
        except JobQueueError as exc:
            self._header.set_problem(f"storage error: {exc}")
            return
        if storage is not app.storage:  # the queue was switched while we were loading
            return
        if not page.records and len(self._cursors) > 1:  # the page emptied (purge, expiry): start over
            self._reset_paging()
            self._follow_up = True
            return
        self._header.set_problem(None)
        app.set_namespaces(namespaces)
        self._counts.show(counts)
        self._show_workers(workers)
        self._table.show(page.records)
        self._next_cursor = page.next_cursor
        self._show_pager(len(page.records))

    def _show_workers(self, workers: Sequence[WorkerRecord]) -> None:
        app = self.dashboard
        self._workers_panel.show(workers)
        self._schedules_panel.show(workers)
        app.known_workers = {worker.id for worker in workers}
        app.unknown_workers -= app.known_workers
        if not app.unknown_workers:
            self._worker_retries = 0
        elif self._worker_retries < _WORKER_RETRIES:
            # Named by an event but not listed yet (its registration is not visible): look again soon.
            # After the last try the ids stay in ``unknown_workers``, so their events ask no more.
            self._worker_retries += 1
            self.set_timer(_WORKER_RETRY_S, self._look_for_workers)

    def _look_for_workers(self) -> None:
        if self.is_current or isinstance(self.app.screen, ModalScreen):
            self._storage_changed()

    def _show_pager(self, rows: int) -> None:
        table = self._table
        parts = [f"page {self.page_number}", f"{rows} jobs"]
        if self.state_filter is not None:
            parts.append(self.state_filter.value)
        if self._next_cursor is not None:
            parts.append("more ]")
        parts.append(table.order.value)
        self._pager.update(" · ".join(parts))

    def _reset_paging(self) -> None:
        self._cursors = [None]
        self._next_cursor = None

    @on(DataChanged)
    def _data_changed(self, _: DataChanged) -> None:
        # Still visible under a dialog; hidden under the detail screen (refreshed on resume).
        if self.is_current or isinstance(self.app.screen, ModalScreen):
            self._storage_changed()

    @on(ProgressReported)
    def _progress_reported(self, event: ProgressReported) -> None:
        self._table.set_progress(event.job_id, event.data)

    @on(QueueSwitched)
    def _queue_switched(self, event: QueueSwitched) -> None:
        self._header.set_queue(event.name)
        self._reset_paging()
        self.reload()

    # --------------------------------------------------------------- filters

    @on(StateFilterChosen)
    def _filter_chosen(self, event: StateFilterChosen) -> None:
        same = event.state is self.state_filter
        self.set_filter(None if same else event.state)

    def set_filter(self, state: JobState | None) -> None:
        """Show only jobs in ``state`` (None: every state), from the first page."""
        self.state_filter = state
        self._counts.mark_filter(state)
        self._reset_paging()
        self.reload()

    def action_cycle_filter(self) -> None:
        """Filter by the next state."""
        self.set_filter(_FILTERS[(_FILTERS.index(self.state_filter) + 1) % len(_FILTERS)])

    def action_cycle_sort(self) -> None:
        """Order the page by the next time column and direction."""
        table = self._table
        table.set_order(table.order.next())
        self._show_pager(table.row_count)

    @on(DataTable.HeaderSelected, "#jobs")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        table = self._table
        column = event.column_key.value or ""
        if column in ("created", "updated"):
            descending = SortOrder(f"{column} ▼")
            table.set_order(SortOrder(f"{column} ▲") if table.order is descending else descending)
            self._show_pager(table.row_count)

    def action_search(self) -> None:
        """Focus the id prefix search."""
        self._search.focus()

    def action_leave_search(self) -> None:
        """Back from the search box to the table."""
        self._table.focus()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.prefix = event.value
        self._reset_paging()
        self.reload()

    @on(Input.Submitted, "#search")
    def _search_submitted(self) -> None:
        self._table.focus()

    # ---------------------------------------------------------------- paging

    def action_next_page(self) -> None:
        """Load the next page, if there is one."""
        if self._next_cursor is None:
            notify(self, "this is the last page", severity="warning")
            return
        self._cursors.append(self._next_cursor)
        self._next_cursor = None
        self.reload()

    def action_previous_page(self) -> None:
        """Go back one page."""
        if len(self._cursors) == 1:
            notify(self, "this is the first page", severity="warning")
            return
        self._cursors.pop()
        self.reload()

    def action_events(self) -> None:
        """Show the live event log."""
        self.app.push_screen(EventsScreen())

    # --------------------------------------------------------------- actions

    @on(DataTable.RowSelected, "#jobs")
    def _open(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.push_screen(DetailScreen(event.row_key.value))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide cancel, retry and purge in read-only mode."""
        return not (action in _WRITE_ACTIONS and self.dashboard.read_only)

    def _selected(self) -> str | None:
        job_id = self._table.selected_id
        if job_id is None:
            notify(self, "no job selected", severity="warning")
        return job_id

    @work(group="actions")
    async def action_cancel_job(self) -> None:
        """Cancel the selected job (asks first)."""
        if (job_id := self._selected()) is not None:
            await _actions.cancel_job(self.dashboard, job_id)

    @work(group="actions")
    async def action_retry_job(self) -> None:
        """Retry the selected failed job (asks first)."""
        if (job_id := self._selected()) is not None:
            await _actions.retry_job(self.dashboard, job_id)

    @work(group="actions")
    async def action_purge(self) -> None:
        """Purge the queue's completed and failed jobs (asks first)."""
        await _actions.purge_finished(self.dashboard)
