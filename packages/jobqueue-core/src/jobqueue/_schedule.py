"""Periodic jobs: ``queue.schedule(...)`` specs, and the consumer's task that enqueues their ticks.

Each tick runs once however many processes register the same schedule, with
no coordination beyond the storage's dedup: every process computes the same
tick times (from the cron expression, or multiples of ``every`` since the
epoch) and enqueues the job ``schedule:<name>:<tick epoch ms>``. The first
enqueue of a tick wins, the others are duplicates. The job's result (and so
its dedup entry) lives longer than a tick can be enqueued late
(``TICK_HORIZON_MS`` past the tick plus one period), so a late enqueue still
finds it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from ._contract import rules
from ._durations import MAX_SECONDS, from_ms, now_ms, to_ms, validate_job_id
from ._errors import StorageError

__all__ = ["TICK_HORIZON_MS", "Schedule", "Scheduler", "build_schedule"]

TICK_HORIZON_MS = 60_000
"""How late (beyond one period) a process may still enqueue a tick; older ticks are skipped."""

_PERIOD_SAMPLES = 8  # cron periods vary (weekdays, months): the longest of this many gaps is the period

Submit = Callable[["Schedule", list[int]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Schedule:
    """One validated ``queue.schedule(...)``: when it ticks, and what each tick enqueues."""

    name: str
    cron: str | None
    every_ms: int | None
    timezone: ZoneInfo
    payload: Any
    catch_up: bool
    period_ms: int

    def job_id(self, tick_ms: int) -> str:
        """The id of the job for the tick at ``tick_ms``: the same in every process."""
        return f"schedule:{self.name}:{tick_ms}"

    @property
    def result_ttl_ms(self) -> int:
        """How long a tick's result lives at least: past any late enqueue of the same tick."""
        return min(2 * self.period_ms + 2 * TICK_HORIZON_MS, MAX_SECONDS * 1000)

    def next_after(self, ms: int) -> int:
        """The first tick strictly after ``ms`` (epoch milliseconds)."""
        if self.every_ms is not None:
            return (ms // self.every_ms + 1) * self.every_ms
        assert self.cron is not None
        tick: datetime = next(CronSim(self.cron, from_ms(ms).astimezone(self.timezone)))
        return int(tick.timestamp()) * 1000

    def latest_at_or_before(self, ms: int) -> int | None:
        """The last tick at or before ``ms``, or None when there is none."""
        if self.every_ms is not None:
            return ms // self.every_ms * self.every_ms
        assert self.cron is not None
        # cronsim's reverse iteration counts a start with microseconds as "at or before"
        start = from_ms(ms // 1000 * 1000).astimezone(self.timezone) + timedelta(microseconds=1)
        try:
            tick: datetime = next(CronSim(self.cron, start, reverse=True))
        except StopIteration:
            return None
        return int(tick.timestamp()) * 1000

    def ticks_between(self, after: int, until: int, limit: int) -> list[int]:
        """The last ``limit`` ticks in ``(after, until]``, in order."""
        ticks: collections.deque[int] = collections.deque(maxlen=limit)
        tick = self.next_after(after)
        while tick <= until:
            ticks.append(tick)
            tick = self.next_after(tick)
        return list(ticks)


def build_schedule(
    name: object,
    *,
    cron: object,
    every: object,
    payload: Any,
    timezone: object,
    catch_up: object,
) -> Schedule:
    """Validate the arguments of ``queue.schedule``.

    Raises:
        ValueError, TypeError: naming the bad argument.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    try:
        validate_job_id(f"schedule:{name}:{rules.MAX_DEADLINE_MS}")
    except ValueError as exc:
        raise ValueError(f"name {name!r} cannot be part of a job id: {exc}") from None
    if (cron is None) == (every is None):
        raise ValueError("pass exactly one of cron (an expression) and every (seconds)")
    if not isinstance(timezone, str) or not timezone:
        raise ValueError(f"timezone must be an IANA time zone name such as 'Europe/Paris', got {timezone!r}")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"timezone {timezone!r} is not a known IANA time zone") from exc
    if not isinstance(catch_up, bool):
        raise TypeError(f"catch_up must be a bool, not {type(catch_up).__name__}")
    every_ms = None
    if every is not None:
        every_ms = to_ms(every, "every")  # type: ignore[arg-type]  # to_ms checks the type itself
        if every_ms < 10:
            raise ValueError(f"every must be at least 0.01 seconds, got {every!r}")
    else:
        _check_cron(cron)
    spec = Schedule(name, cron, every_ms, zone, payload, catch_up, period_ms=every_ms or 0)  # type: ignore[arg-type]  # cron is a str here
    if every_ms is None:
        spec = _with_cron_period(spec)
    return spec


def _check_cron(cron: object) -> None:
    if not isinstance(cron, str):
        raise TypeError(f"cron must be a str, not {type(cron).__name__}")
    fields = cron.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"cron must have 5 fields (minute hour day month weekday) or 6 (seconds first), got {cron!r}"
        )
    try:
        CronSim(cron, datetime.now(ZoneInfo("UTC")))
    except CronSimError as exc:
        raise ValueError(f"cron {cron!r} is not a valid cron expression: {exc}") from exc


def _with_cron_period(spec: Schedule) -> Schedule:
    tick = spec.latest_at_or_before(now_ms()) or now_ms()
    gaps = []
    for _ in range(_PERIOD_SAMPLES):
        following = spec.next_after(tick)
        gaps.append(following - tick)
        tick = following
    return Schedule(
        spec.name, spec.cron, None, spec.timezone, spec.payload, spec.catch_up, period_ms=max(gaps)
    )


class Scheduler:
    """The consumer's background task: enqueue every due tick of every schedule.

    A tick is due from its time on. A process enqueues the ticks that fell
    due while it ran (all of them after a pause or a storage outage, up to
    ``TICK_HORIZON_MS`` late); on start it skips those before it, except the
    latest one of a ``catch_up`` schedule.
    """

    def __init__(self, schedules: list[Schedule], submit: Submit, logger: logging.Logger) -> None:
        self._schedules = schedules
        self._submit = submit
        self._logger = logger
        self._last_ticks: dict[str, int] = {}

    @property
    def schedules(self) -> list[Schedule]:
        """The schedules this task runs."""
        return list(self._schedules)

    @property
    def last_ticks(self) -> dict[str, int]:
        """The latest tick enqueued (by this process or found enqueued by another) per schedule name."""
        return dict(self._last_ticks)

    async def run(self) -> None:
        """Run until cancelled."""
        async with asyncio.TaskGroup() as group:
            for spec in self._schedules:
                group.create_task(self._run_one(spec), name=f"jobqueue-schedule-{spec.name}")

    async def _run_one(self, spec: Schedule) -> None:
        last = now_ms()
        pending: list[int] = []
        if spec.catch_up:
            latest = spec.latest_at_or_before(last)
            if latest is not None and last - latest <= spec.period_ms + TICK_HORIZON_MS:
                pending.append(latest)
        failures = 0
        while True:
            now = now_ms()
            horizon = now - spec.period_ms - TICK_HORIZON_MS
            if last < horizon or (pending and pending[0] < horizon):
                # after a long pause or outage: ticks this late may have run and expired elsewhere
                self._logger.warning(
                    "schedule %r: skipped the ticks due between %s and %s (more than %gs late)",
                    spec.name, from_ms(min([last, *pending])).isoformat(), from_ms(horizon).isoformat(),
                    (spec.period_ms + TICK_HORIZON_MS) / 1000,
                )  # fmt: skip
                pending = [tick for tick in pending if tick >= horizon]
                last = max(last, horizon)
            due = pending + spec.ticks_between(last, now, rules.MAX_BATCH - len(pending))
            if due:
                try:
                    await self._submit(spec, due)
                    self._last_ticks[spec.name] = max(due[-1], self._last_ticks.get(spec.name, due[-1]))
                except StorageError as exc:
                    failures += 1
                    if failures == 1:
                        self._logger.warning("schedule %r: enqueue failed (%s); retrying", spec.name, exc)
                    pending, last = due, max(last, now)
                    await asyncio.sleep(min(0.05 * 2**failures, 5.0) * random.uniform(0.5, 1.0))
                    continue
                except Exception:  # a bug must not end the schedule: log it, drop these ticks
                    self._logger.exception("schedule %r: could not enqueue ticks %s", spec.name, due)
                failures = 0
            pending, last = [], max(last, now)  # max: a clock stepped back must not repeat ticks
            # wake at the next tick; an early wake (clock adjustments) finds nothing due and sleeps again
            await asyncio.sleep(max(0, spec.next_after(now) - now_ms()) / 1000)
