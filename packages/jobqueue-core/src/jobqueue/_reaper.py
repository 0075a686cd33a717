"""``Reaper``: puts the jobs of dead, frozen or cut-off workers back in the queue."""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self, overload

from ._config import default_worker_id
from ._contract.capabilities import LeaderLock
from ._contract.records import Recovery
from ._contract.storage import Storage
from ._durations import Duration, to_ms
from ._emitter import Emitter, Unsubscribe
from ._errors import StorageError
from ._tasks import cancel_and_wait
from ._telemetry import Observer, default_observer

__all__ = ["REAPER_EVENTS", "LeaderElection", "Reaper"]

REAPER_EVENTS = frozenset(
    {"started", "stopped", "stalled", "leadership_acquired", "leadership_lost", "error"}
)

_LOCK_KEY = "reaper"
_MAX_SLEEP_MS = 500  # a job claimed after a pass may have a short lease: look again at least this often


@dataclass(frozen=True, slots=True)
class LeaderElection:
    """How reapers agree on one leader: a storage lock of ``lock_ttl`` seconds.

    The leader renews it every ``renew_interval``; the others try to take it
    every ``retry_interval``, so a dead leader is replaced within about
    ``lock_ttl + retry_interval``.
    """

    lock_ttl: Duration = 30.0
    renew_interval: Duration = 10.0
    retry_interval: Duration = 5.0

    def __post_init__(self) -> None:
        ttl = to_ms(self.lock_ttl, "lock_ttl")
        if to_ms(self.renew_interval, "renew_interval") >= ttl:
            raise ValueError("renew_interval must be shorter than lock_ttl")
        to_ms(self.retry_interval, "retry_interval")


class Reaper:
    """Recovers stalled jobs: those whose lease expired because their worker stopped renewing it.

    The leader sleeps until the earliest lease deadline the storage holds,
    and never more than half a second (a job claimed after a pass may carry a
    shorter lease than any it saw), then recovers every expired job in one
    atomic storage call: a stalled job is back in the queue within about a
    second of its own deadline, whatever ``visibility_timeout`` says. Jobs
    left by workers that died before this reaper started are found on its
    first pass. With ``leader_election`` only the holder of the storage's
    leader lock acts; the others try to take it every ``retry_interval``.
    Leadership lasts ``lock_ttl`` from each renewal: a pass that keeps the
    leader from renewing that long (a storage call held up) ends it, with
    ``leadership_lost``, since another reaper may take the lock meanwhile.
    ``visibility_timeout`` is kept for compatibility and bounds nothing else.
    With ``jobqueue-core[otel]`` installed, recoveries are counted in
    OpenTelemetry metrics; ``instrument=False`` switches that off.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        name: str | None = None,
        visibility_timeout: Duration = 30.0,
        leader_election: LeaderElection | None = LeaderElection(),  # frozen, so shareable
        reaper_id: str | None = None,
        logger: logging.Logger | None = None,
        instrument: bool = True,
    ) -> None:
        if not isinstance(storage, Storage):
            raise TypeError(f"storage must be a jobqueue.Storage, not {type(storage).__name__}")
        if leader_election is not None and not isinstance(storage, LeaderLock):
            raise TypeError(
                f"{type(storage).__name__} does not implement LeaderLock; pass leader_election=None"
            )
        self.storage = storage.namespace(name) if name is not None else storage
        self._visibility_ms = to_ms(visibility_timeout, "visibility_timeout")
        self._election = leader_election
        self.reaper_id = reaper_id or f"reaper-{default_worker_id()}-{secrets.token_hex(2)}"
        self._logger = logger or logging.getLogger("jobqueue")
        self._emitter = Emitter(REAPER_EVENTS, self._logger)
        self._task: asyncio.Task[None] | None = None
        self.is_leader = False
        self._lapse: asyncio.TimerHandle | None = None  # ends leadership when the lock runs out unrenewed
        self._observer: Observer | None = default_observer() if instrument else None

    @overload
    def on(
        self,
        event: Literal["started", "stopped", "leadership_acquired", "leadership_lost"],
        callback: Callable[[], object],
    ) -> Unsubscribe: ...
    @overload
    def on(self, event: Literal["stalled"], callback: Callable[[str, str], object]) -> Unsubscribe: ...
    @overload
    def on(self, event: Literal["error"], callback: Callable[[BaseException], object]) -> Unsubscribe: ...
    def on(self, event: str, callback: Callable[..., object]) -> Unsubscribe:
        """Call ``callback`` on ``event``: ``stalled(job_id, worker_id)``, ``leadership_acquired()``, ..."""
        return self._emitter.on(event, callback)

    async def start(self) -> None:
        """Connect and start the reaper loop."""
        if self._task is not None:
            return
        await self.storage.connect()
        self._task = asyncio.create_task(self._run(), name="jobqueue-reaper")
        self._emitter.emit("started")

    async def stop(self) -> None:
        """Stop the loop, hand over leadership at once, disconnect."""
        task, self._task = self._task, None
        if task is None:
            return
        await cancel_and_wait(task)
        try:
            if self.is_leader and isinstance(self.storage, LeaderLock):
                await self.storage.release_lock(_LOCK_KEY, self.reaper_id)
        except StorageError as exc:
            self._logger.warning("reaper %s could not release the leader lock: %s", self.reaper_id, exc)
        finally:
            self._cancel_lapse()
            self._set_leader(False)
            await self.storage.disconnect()
            self._emitter.emit("stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def sweep(self) -> int:
        """Recover every job whose lease has expired now; return how many."""
        return len((await self._pass()).stalled)

    async def _pass(self) -> Recovery:
        recovery = await self.storage.recover_stalled()
        for item in recovery.stalled:
            self._logger.warning("job %r stalled on worker %s; requeued", item.id, item.worker_id)
            self._emitter.emit("stalled", item.id, item.worker_id)
        if recovery.stalled and self._observer is not None:
            self._observer.stalled(self.storage.name, len(recovery.stalled))
        return recovery

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                wait_ms = await self._step()
                failures = 0
            except StorageError as exc:
                failures += 1
                if failures == 1:
                    self._logger.warning("reaper: storage error (%s); retrying", exc)
                    self._emitter.emit("error", exc)
                wait_ms = min(50 * 2**failures, 5000) * random.uniform(0.5, 1.0)
            await asyncio.sleep(max(wait_ms, 1) / 1000)

    async def _step(self) -> float:
        """One pass: (re)claim leadership, sweep if leader; return ms to sleep."""
        election = self._election
        if election is not None:
            assert isinstance(self.storage, LeaderLock)
            ttl_ms = to_ms(election.lock_ttl, "")
            loop = asyncio.get_running_loop()
            # The lock runs out ttl after the storage granted it, so no earlier than ttl after we asked.
            lapses_at = loop.time() + ttl_ms / 1000
            granted = await self.storage.acquire_lock(_LOCK_KEY, self.reaper_id, ttl_ms)
            leader = granted and loop.time() < lapses_at  # granted too late: it may have run out already
            self._cancel_lapse()
            if leader:
                self._lapse = loop.call_at(lapses_at, self._set_leader, False)
            self._set_leader(leader)
            if not leader:
                return 0 if granted else to_ms(election.retry_interval, "")
        else:
            self._set_leader(True)
        next_ms = (await self._pass()).next_expiry_ms
        wait = _MAX_SLEEP_MS if next_ms is None else min(max(next_ms, 0) + 5, _MAX_SLEEP_MS)
        if election is not None:
            wait = min(wait, to_ms(election.renew_interval, ""))
        return wait

    def _cancel_lapse(self) -> None:
        if self._lapse is not None:
            self._lapse.cancel()
            self._lapse = None

    def _set_leader(self, leader: bool) -> None:
        if leader and not self.is_leader:
            self.is_leader = True
            self._emitter.emit("leadership_acquired")
        elif not leader and self.is_leader:
            self.is_leader = False
            self._emitter.emit("leadership_lost")
