"""The dashboard application: owns the storage connection, the event listener and the screens."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress

from jobqueue import JobQueueError, Storage
from jobqueue.storage import Channel, EventKind, Monitoring, StorageEvent, now_ms, redact_url
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.timer import Timer
from textual.worker import Worker, WorkerCancelled, WorkerError, WorkerFailed

from ._latency import Latency
from ._messages import DataChanged, ProgressReported, QueueSwitched
from ._safe import notify, plain
from ._screens.help import HelpScreen
from ._screens.main import MainScreen
from ._screens.queues import QueueScreen
from ._throughput import Throughput

__all__ = ["DashboardApp", "LoggedEvent"]

LoggedEvent = tuple[int, StorageEvent]
"""An event and when (dashboard clock, ms) it arrived."""

_EVENT_LOG_SIZE = 1000
"""Events kept for the event log screen."""

_MAX_UNKNOWN_WORKERS = 100
"""Worker ids seen in events but not yet listed, remembered at most."""

_WORKER_EVENTS = frozenset({EventKind.WORKER_JOINED, EventKind.WORKER_LEFT})
"""Events after which the workers panel lists again at once."""

_MAX_TRACKED_IDS = 500
"""Past this many changed jobs in one flush, screens are told that anything may have changed."""


class DashboardApp(App[None]):
    """A live dashboard of one jobqueue storage.

    Args:
        storage: the storage to watch (connected and disconnected by the app,
            which is harmless when the caller holds its own connection).
        url: shown in the header, secrets masked (default: the storage's type).
        queue: the namespace to watch first (default: the storage's own).
        read_only: hide cancel, retry and purge.
        page_size: rows per page of the jobs table; never more are loaded.
        refresh_interval: seconds between fallback refreshes when no event arrives.
        clock: epoch milliseconds now, for ages and throughput.
    """

    TITLE = "jobqueue"
    ENABLE_COMMAND_PALETTE = False  # its footer entry would not fit 80 columns; the help screen lists keys
    CSS_PATH = [  # noqa: RUF012 (Textual reads this class attribute)
        "styles/app.tcss",
        "styles/main.tcss",
        "styles/detail.tcss",
        "styles/events.tcss",
        "styles/dialogs.tcss",
    ]
    BINDINGS = [  # noqa: RUF012 (Textual reads this class attribute)
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("g", "switch_queue", "Queue"),
        Binding("t", "toggle_theme", "Theme", show=False),
    ]
    DEBOUNCE_S = 0.2
    """Events are coalesced into at most one refresh per this many seconds."""

    def __init__(
        self,
        storage: Storage,
        *,
        url: str | None = None,
        queue: str | None = None,
        read_only: bool = False,
        page_size: int = 50,
        refresh_interval: float = 5.0,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        super().__init__()
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size}")
        if refresh_interval <= 0:
            raise ValueError(f"refresh_interval must be > 0 seconds, got {refresh_interval}")
        self._root = storage
        self._storage = storage if queue is None or queue == storage.name else storage.namespace(queue)
        self._connected = False
        self.display_url = redact_url(url) if url else f"{type(storage).__name__}"
        self.read_only = read_only
        self.page_size = page_size
        self.refresh_interval = refresh_interval
        self.clock = clock
        self.throughput = Throughput()
        self.latency = Latency()
        self.known_workers: set[str] = set()
        """Worker ids the workers panel listed last (set by the main screen)."""
        self.unknown_workers: set[str] = set()
        """Worker ids named by events but not listed yet: the main screen lists workers again soon."""
        self.event_log: deque[LoggedEvent] = deque(maxlen=_EVENT_LOG_SIZE)
        self.events_total = 0
        self.live = False
        """True while the storage's event stream is subscribed."""
        self.namespaces: list[str] = [self._storage.name]
        self._changed: set[str] | None = set()
        self._flush_timer: Timer | None = None
        self._listener: Worker[None] | None = None

    @property
    def storage(self) -> Storage:
        """The namespace being watched."""
        return self._storage

    @property
    def monitoring(self) -> Monitoring | None:
        """The namespace being watched, when its storage offers counts, listings and purges."""
        return self._storage if isinstance(self._storage, Monitoring) else None

    @property
    def no_monitoring(self) -> str:
        """What a storage without the ``Monitoring`` capability leaves out, said for a person."""
        return (
            f"{type(self._storage).__name__} has no monitoring capability: counts, the job list, "
            "workers, queues, retry and purge are unavailable (the event log still works)"
        )

    # ------------------------------------------------------------- lifecycle

    async def on_mount(self) -> None:
        try:
            await self._storage.connect()
        except JobQueueError as exc:
            message = f"jobqueue-tui: cannot connect to {self.display_url}: {exc}"
            self.exit(return_code=1, message=plain(message))  # a str would be printed as markup
            return
        self._connected = True
        self._listener = self._listen()
        self.set_interval(self.refresh_interval, lambda: self.data_changed(None))
        await self.push_screen(MainScreen())

    async def on_unmount(self) -> None:
        # Every worker stops before the connection it uses goes away.
        workers = list(self.workers)
        self.workers.cancel_all()
        for worker in workers:
            await _finished(worker)
        if self._connected:
            self._connected = False
            try:
                await self._storage.disconnect()
            except JobQueueError as exc:  # the storage went away first: nothing left to release
                self.log.warning(f"disconnect failed: {exc}")

    # ---------------------------------------------------------------- events

    @work(exclusive=True, group="events")
    async def _listen(self) -> None:
        """Count throughput and schedule refreshes from the storage's events; resubscribe on loss."""
        storage = self._storage
        while True:
            try:
                async with storage.subscribe(Channel.EVENTS) as events:
                    self.live = True
                    self.data_changed(None)  # events published before subscribing are not delivered
                    async for event in events:
                        received = self.clock()
                        self.throughput.record(event.kind, received)
                        self.latency.record(event, received)
                        self.event_log.append((received, event))
                        self.events_total += 1
                        if event.kind in _WORKER_EVENTS:
                            self.data_changed(None)  # a worker joined or left: list the workers again now
                            continue
                        self._note_worker(event.worker_id)
                        if event.kind is EventKind.PROGRESS and event.data is not None:
                            self._progress_reported(event.job_id, event.data)
                        self.data_changed(frozenset({event.job_id}))
            except JobQueueError as exc:
                notify(self, f"event stream lost ({exc}); retrying", severity="warning", timeout=3)
            finally:
                self.live = False
            await asyncio.sleep(self.refresh_interval)  # the fallback refresh keeps screens current meanwhile

    def _note_worker(self, worker_id: str | None) -> None:
        # A job event names a worker the last listing did not have: list again now, not at the
        # fallback (for a storage that does not publish worker_joined, or an event that lost the race).
        if worker_id is None or worker_id in self.known_workers or worker_id in self.unknown_workers:
            return
        if len(self.unknown_workers) < _MAX_UNKNOWN_WORKERS:
            self.unknown_workers.add(worker_id)
            self.data_changed(None)

    def _progress_reported(self, job_id: str, data: bytes) -> None:
        # Shown at once from the event's value; the debounced reload confirms it from the storage.
        for screen in self.screen_stack:
            screen.post_message(ProgressReported(job_id, data))

    def data_changed(self, job_ids: frozenset[str] | None) -> None:
        """Tell the screens, at most once per ``DEBOUNCE_S``, that jobs changed (None: anything)."""
        if job_ids is None or self._changed is None:
            self._changed = None
        else:
            self._changed.update(job_ids)
            if len(self._changed) > _MAX_TRACKED_IDS:
                self._changed = None
        if self._flush_timer is None:
            self._flush_timer = self.set_timer(self.DEBOUNCE_S, self._flush_changes)

    def _flush_changes(self) -> None:
        self._flush_timer = None
        changed = None if self._changed is None else frozenset(self._changed)
        self._changed = set()
        for screen in self.screen_stack:
            screen.post_message(DataChanged(changed))

    # --------------------------------------------------------------- queues

    def set_namespaces(self, names: Sequence[str]) -> None:
        """Remember the storage's namespaces (the switcher shows when there are several)."""
        merged = sorted({*names, self._storage.name})
        if merged != self.namespaces:
            self.namespaces = merged
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Show the queue switcher only when there is another queue to switch to."""
        if action == "switch_queue":
            return len(self.namespaces) > 1
        return True

    def action_switch_queue(self) -> None:
        """Pick another namespace to watch."""
        self.push_screen(QueueScreen(self.namespaces, self._storage.name), self._queue_chosen)

    async def _queue_chosen(self, name: str | None) -> None:
        if name is not None and name != self._storage.name:
            await self.switch_queue(name)

    async def switch_queue(self, name: str) -> None:
        """Watch namespace ``name`` instead of the current one."""
        view = self._root.namespace(name)
        try:
            await view.connect()
        except JobQueueError as exc:
            notify(self, f"cannot switch to queue {name}: {exc}", severity="error")
            return
        old, self._storage = self._storage, view
        if self._listener is not None:
            self._listener.cancel()
            await _finished(self._listener)
        await old.disconnect()
        self.throughput.clear()
        self.latency.clear()
        self.known_workers.clear()
        self.unknown_workers.clear()
        self.event_log.clear()
        self._listener = self._listen()
        for screen in self.screen_stack:
            screen.post_message(QueueSwitched(name))

    # ----------------------------------------------------------------- misc

    def action_toggle_theme(self) -> None:
        """Switch between the light and the dark theme."""
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_help(self) -> None:
        """Show the key bindings."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(read_only=self.read_only))


async def _finished(worker: Worker[None]) -> None:
    with suppress(WorkerCancelled, WorkerFailed, WorkerError):
        await worker.wait()
