"""LISTEN/NOTIFY: one listening connection per storage, shared by its views, feeding subscriptions and claims.

Each namespace has four NOTIFY channels (``_records.channel_name`` and a
suffix), one per kind of listener, and each event is sent on one of them:
blocked claims hear only what may make a job ready, waiters only outcomes. A
channel is listened to from the first subscription or blocking claim that
needs it until the storage disconnects. A payload is ``'e'`` + base64 of an encoded event, or ``'i'`` +
base64 of the event without its data when the whole one was over the 8000-byte
NOTIFY limit: the subscription then reads the data from the job's row.

When the listening connection drops, events are lost (delivery is best
effort, as the contract says); blocked claims are woken to look for
themselves, and a background task reconnects and listens again. An idle
connection is pinged every ``PING_SECONDS``, so a link that died silently (a
network cut: no reset ever arrives) is dropped too, within ``PING_SECONDS`` and
the command timeout.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace

import asyncpg
from jobqueue.storage import (
    MAX_PENDING_EVENTS,
    Channel,
    EventBuffer,
    EventKind,
    StorageError,
    StorageEvent,
    cancel_and_wait,
    decode_event,
    rules,
)

from ._deadline import deadline

__all__ = [
    "PING_SECONDS",
    "ClaimWaiter",
    "Drained",
    "Listener",
    "Subscription",
    "listen_channels",
    "notify_channel",
    "parse_payload",
    "wake_channel",
]

logger = logging.getLogger("jobqueue.postgres")

# Each event goes out on one NOTIFY channel of its namespace, by what its listeners want, so
# that a process hears only what it listens for: "w" the events after which a job may be ready
# (blocked claims), "d" terminal outcomes (waiters), "e" the rest of the life cycle, "c" aborts.
# The statements in _sql name the same suffixes.
_SUFFIXES = {
    EventKind.ENQUEUED: "_w",
    EventKind.REQUEUED: "_w",
    EventKind.FAILING: "_w",
    EventKind.STALLED: "_w",
    EventKind.COMPLETED: "_d",
    EventKind.FAILED: "_d",
    EventKind.CANCELLED: "_d",
    EventKind.PROCESSING: "_e",
    EventKind.PROGRESS: "_e",
    EventKind.WORKER_JOINED: "_e",
    EventKind.WORKER_LEFT: "_e",
    EventKind.ABORT: "_c",
}
PING_SECONDS = 10.0
"""How often the listening connection is checked with a ``SELECT 1``."""

_WAKING = frozenset(kind for kind, suffix in _SUFFIXES.items() if suffix == "_w")
"""Events after which a blocked claim may find work: a job became ready, or the schedule changed."""


def wake_channel(stem: str) -> str:
    """The channel of the ``_WAKING`` events."""
    return stem + "_w"


def notify_channel(stem: str, kind: EventKind) -> str:
    """The channel an event of ``kind`` is sent on."""
    return stem + _SUFFIXES[kind]


def listen_channels(stem: str, channels: frozenset[Channel]) -> list[str]:
    """The NOTIFY channels that carry every event a subscription to ``channels`` receives."""
    return sorted({stem + _SUFFIXES[kind] for kind in EventKind if channels.intersection(kind.channels)})


FetchData = Callable[[StorageEvent], Awaitable[bytes | None]]


def parse_payload(payload: str) -> tuple[StorageEvent, bool]:
    """Decode a NOTIFY payload: the event, and whether its data was left out (to be fetched)."""
    tag, body = payload[:1], payload[1:]
    if tag not in ("e", "i"):
        raise ValueError(f"unknown jobqueue notification {payload[:40]!r}")
    return decode_event(base64.b64decode(body)), tag == "i"


class Subscription:
    """One ``subscribe`` context: events of its channels, in the order the listener received them.

    Bounded (an ``EventBuffer``); an event whose data did not fit in the
    notification is completed from the row when it is read.
    """

    def __init__(
        self, channels: frozenset[Channel], fetch: FetchData, limit: int = MAX_PENDING_EVENTS
    ) -> None:
        self.channels = channels
        self._fetch = fetch
        self._buffer: EventBuffer[tuple[StorageEvent, bool]] = EventBuffer(limit, source="postgres")

    @property
    def dropped(self) -> int:
        """Events dropped because the reader fell behind."""
        return self._buffer.dropped

    def deliver(self, event: StorageEvent, partial: bool) -> None:
        """Queue the event once per subscribed channel it was published on."""
        for channel in event.kind.channels:
            if channel in self.channels:
                self._buffer.put((event, partial))

    def lost(self) -> None:
        """The listening connection dropped (events may be missing); nothing to do."""

    def close(self) -> None:
        """End the iteration (the storage disconnected)."""
        self._buffer.close()

    def __aiter__(self) -> AsyncIterator[StorageEvent]:
        return self

    async def __anext__(self) -> StorageEvent:
        event, partial = await anext(self._buffer)
        if partial:
            try:
                data = rules.inline(await self._fetch(event))
            except StorageError:
                data = None  # best effort: the waiter reads the job itself
            event = replace(event, data=data)
        return event


@dataclass(frozen=True, slots=True)
class Drained:
    """A claim took every ready job: as of the listener's ``mark``, with none scheduled before ``due_at``.

    ``due_at`` is event-loop time; None when nothing is scheduled. Until the
    mark moves (a notification that may make a job ready, or a lost listening
    connection) or ``due_at`` passes, another claim would find nothing: a
    blocking claim can wait for the notification without asking first.
    """

    mark: tuple[int, int]
    due_at: float | None

    def due_ms(self, now: float) -> int | None:
        """Milliseconds from ``now`` until the next scheduled job falls due."""
        return None if self.due_at is None else max(0, int((self.due_at - now) * 1000))


class ClaimWaiter:
    """A blocked claim: set when an event may have made a job ready (or the connection dropped)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def deliver(self, event: StorageEvent, partial: bool) -> None:
        """Wake on events after which a job may be ready."""
        if event.kind in _WAKING:
            self._event.set()

    def lost(self) -> None:
        """Notifications may have been missed: look again."""
        self._event.set()

    def clear(self) -> None:
        """Forget earlier wake-ups (call before looking for work)."""
        self._event.clear()

    async def wait(self, seconds: float) -> None:
        """Wait until woken, or ``seconds``."""
        try:
            async with asyncio.timeout(max(seconds, 0)):
                await self._event.wait()
        except TimeoutError:
            pass


Sink = Subscription | ClaimWaiter


class Listener:
    """The one LISTEN connection of a storage (all its views), and the sinks of each channel."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], command_timeout: float) -> None:
        self._connect = connect
        self._timeout = command_timeout
        self._conn: asyncpg.Connection | None = None
        self._listening: set[str] = set()
        self._sinks: dict[str, set[Sink]] = {}
        self._lock = asyncio.Lock()
        self._reconnect: asyncio.Task[None] | None = None
        self._priming: asyncio.Task[None] | None = None
        self._pinging: asyncio.Task[None] | None = None
        self._closed = False
        self._wakes: dict[str, int] = {}  # notifications dispatched per channel that may make a job ready
        self._drops = 0  # listening connections lost: notifications may have been missed

    async def add(self, channels: Iterable[str], sink: Sink) -> None:
        """Deliver the channels' events from now on to ``sink``; returns once they are listened to.

        The sink is attached after a round trip on the listening connection:
        notifications arrive in order with query results, so one sent before
        (an event published before this subscription) is dispatched first and
        never reaches the new sink.
        """
        channels = list(channels)
        await self._listen(channels, barrier=True)
        for channel in channels:
            self._sinks.setdefault(channel, set()).add(sink)

    def start(self, channel: str) -> None:
        """Connect and LISTEN to ``channel`` in the background, ahead of the first subscription or blocking claim."""
        loop = asyncio.get_running_loop()
        self._priming = loop.create_task(self._prime(channel))
        self._pinging = loop.create_task(self._ping())

    async def _prime(self, channel: str) -> None:
        try:
            await self._listen([channel])
        except (StorageError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            logger.debug("listener not opened ahead: %s", exc)  # the first add() tries again and reports

    async def _listen(self, channels: Iterable[str], *, barrier: bool = False) -> None:
        async with self._lock:
            conn = await self._ensure_connection()
            with deadline(conn, self._timeout):
                for channel in channels:
                    if channel not in self._listening:
                        await conn.add_listener(channel, self._on_notify)
                        self._listening.add(channel)
                if barrier:
                    await conn.execute("SELECT 1")

    async def _ping(self) -> None:
        """Every ``PING_SECONDS``, a round trip on the listening connection; one without answer drops it."""
        while True:
            await asyncio.sleep(PING_SECONDS)
            async with self._lock:
                conn = self._conn
                if conn is None or conn.is_closed():
                    continue
                try:
                    with deadline(conn, self._timeout):
                        await conn.execute("SELECT 1")
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    logger.debug("listening connection lost: %s", exc)
                    conn.terminate()  # _on_terminated wakes the sinks and listens again

    def mark(self, channel: str) -> tuple[int, int] | None:
        """Where the channel's wake-ups stand; None when it is not listened to.

        Two equal marks bracket a span in which no notification that may make a
        job ready was dispatched and the listening connection never dropped.
        """
        if channel not in self._listening or self._conn is None or self._conn.is_closed():
            return None
        return self._drops, self._wakes.get(channel, 0)

    def watch(self, channel: str, sink: Sink) -> bool:
        """Deliver to ``sink`` at once when the channel is already listened to; False (and no change) if not."""
        if channel not in self._listening or self._conn is None or self._conn.is_closed():
            return False
        self._sinks.setdefault(channel, set()).add(sink)
        return True

    def remove(self, channels: Iterable[str], sink: Sink) -> None:
        """Stop delivering to ``sink``. The channels stay listened to: the next claim needs them again."""
        for channel in channels:
            sinks = self._sinks.get(channel)
            if sinks is not None:
                sinks.discard(sink)

    async def _ensure_connection(self) -> asyncpg.Connection:
        if self._closed:
            raise StorageError("postgres storage is disconnected; call connect()")
        if self._conn is None or self._conn.is_closed():
            self._listening.clear()
            conn = await self._connect()
            conn.add_termination_listener(self._on_terminated)
            self._conn = conn
        return self._conn

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object) -> None:
        try:
            event, partial = parse_payload(str(payload))
        except Exception:
            logger.warning("ignored an unreadable notification on %s: %.60r", channel, payload)
            return
        if event.kind in _WAKING:
            self._wakes[channel] = self._wakes.get(channel, 0) + 1
        for sink in list(self._sinks.get(channel, ())):
            sink.deliver(event, partial)

    def _on_terminated(self, conn: object) -> None:
        if conn is not self._conn or self._closed:
            return
        self._conn = None
        self._listening.clear()
        self._drops += 1
        for sinks in self._sinks.values():
            for sink in list(sinks):
                sink.lost()
        if self._reconnect is None or self._reconnect.done():
            self._reconnect = asyncio.get_running_loop().create_task(self._listen_again())

    async def _listen_again(self) -> None:
        """Reconnect and listen to every channel that still has sinks, with backoff while the server is away."""
        delay = 0.05
        while not self._closed:
            wanted = [channel for channel, sinks in self._sinks.items() if sinks]
            if not wanted:
                return
            try:
                await self._listen(wanted)
            except (StorageError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                logger.debug("listener reconnect failed: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            for sinks in self._sinks.values():
                for sink in list(sinks):
                    sink.lost()  # wake claims: they may have missed a notification while we were away
            return

    async def close(self) -> None:
        """End every subscription and close the connection."""
        self._closed = True
        await cancel_and_wait(self._reconnect, self._priming, self._pinging)
        for sinks in self._sinks.values():
            for sink in sinks:
                if isinstance(sink, Subscription):
                    sink.close()
                else:
                    sink.lost()
        self._sinks.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.remove_termination_listener(self._on_terminated)
            try:
                async with asyncio.timeout(5):
                    await conn.close()
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()
