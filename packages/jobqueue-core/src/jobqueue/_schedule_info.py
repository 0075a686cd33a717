"""Schedules on show: what a worker registers about its schedules, and how a dashboard reads it back.

Schedules are stored nowhere of their own. A worker puts the specs of the
schedules it runs (and the latest tick it enqueued of each) in the ``info``
of its registration, refreshed with every heartbeat; ``schedules_of`` reads
them back from ``Monitoring.list_workers``. So a schedule is listed exactly
while a live worker runs it, and its next run is computed here, from the spec.

The info is msgpack: ``{"schedules": [[name, cron|nil, every_ms|nil, timezone, last_tick_ms|nil], ...]}``.
Other workers' info is untrusted: entries that do not decode are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgpack

from ._contract import rules
from ._contract.records import WorkerRecord
from ._durations import from_ms, now_ms
from ._schedule import Schedule

__all__ = ["ScheduleInfo", "encode_worker_info", "schedules_of"]


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """One schedule as the live workers running it registered it (see ``schedules_of``).

    Exactly one of ``cron`` and ``every`` is set. ``last_tick`` is the latest
    tick a worker enqueued (None before the first); ``workers`` are the ids of
    the live workers that run it.
    """

    name: str
    cron: str | None
    every: timedelta | None
    timezone: str
    last_tick: datetime | None
    workers: tuple[str, ...]

    @property
    def spec(self) -> str:
        """``cron <expression>`` or ``every <seconds>s``."""
        if self.cron is not None:
            return f"cron {self.cron}"
        assert self.every is not None
        return f"every {self.every.total_seconds():g}s"

    def next_run(self, after: datetime | None = None) -> datetime:
        """The first tick strictly after ``after`` (an aware datetime; default: now), in UTC."""
        start = now_ms() if after is None else int(after.timestamp() * 1000)
        return from_ms(self._schedule().next_after(start))

    def _schedule(self) -> Schedule:
        every_ms = None if self.every is None else self.every // timedelta(milliseconds=1)
        return Schedule(self.name, self.cron, every_ms, ZoneInfo(self.timezone), None, False, period_ms=0)


def encode_worker_info(schedules: Sequence[Schedule], last_ticks: Mapping[str, int]) -> bytes:
    """The registration info of a worker running ``schedules`` (as many as fit ``rules.MAX_WORKER_INFO``)."""
    entries = [
        [spec.name, spec.cron, spec.every_ms, spec.timezone.key, last_ticks.get(spec.name)]
        for spec in schedules
    ]
    while True:
        data: bytes = msgpack.packb({"schedules": entries}, use_bin_type=True)
        if len(data) <= rules.MAX_WORKER_INFO or not entries:
            return data
        entries = entries[: len(entries) // 2]  # thousands of long names: show those that fit


def schedules_of(workers: Iterable[WorkerRecord], *, now: datetime | None = None) -> list[ScheduleInfo]:
    """The schedules the live workers among ``workers`` run, by name.

    ``workers`` is what ``Monitoring.list_workers`` returned. Workers that
    register one schedule with the same spec are merged; the same name with
    different specs (a misconfigured deployment) is listed once per spec.
    """
    at = now_ms() if now is None else int(now.timestamp() * 1000)
    merged: dict[tuple[str, str | None, int | None, str], tuple[int | None, list[str]]] = {}
    computable: dict[tuple[str | None, int | None, str], bool] = {}  # each spec tried once, not per worker
    for worker in workers:
        if worker.expires_at <= at:
            continue  # lapsed: it runs nothing any more
        for name, cron, every_ms, timezone, last_tick in _decode(worker.info):
            spec = (cron, every_ms, timezone)
            if spec not in computable:
                computable[spec] = _computable(*spec, at)
            if not computable[spec]:
                continue
            latest, ids = merged.setdefault((name, cron, every_ms, timezone), (None, []))
            ids.append(worker.id)
            if last_tick is not None and (latest is None or last_tick > latest):
                merged[name, cron, every_ms, timezone] = (last_tick, ids)
    return [
        ScheduleInfo(
            name,
            cron,
            None if every_ms is None else timedelta(milliseconds=every_ms),
            timezone,
            None if latest is None else from_ms(latest),
            tuple(sorted(ids)),
        )
        for (name, cron, every_ms, timezone), (latest, ids) in sorted(merged.items(), key=_order)
    ]


_Entry = tuple[str, str | None, int | None, str, int | None]


def _order(item: tuple[tuple[str, str | None, int | None, str], Any]) -> tuple[str, str, int, str]:
    name, cron, every_ms, timezone = item[0]
    return name, cron or "", every_ms or 0, timezone


def _decode(info: bytes) -> list[_Entry]:
    if not info:
        return []
    try:
        decoded = msgpack.unpackb(info, raw=False)
    except Exception:
        return []  # not ours (another tool's info) or torn
    entries = decoded.get("schedules") if isinstance(decoded, dict) else None
    if not isinstance(entries, list):
        return []
    return [entry for entry in map(_entry, entries) if entry is not None]


def _entry(item: object) -> _Entry | None:
    if not isinstance(item, list) or len(item) != 5:
        return None
    name, cron, every_ms, timezone, last_tick = item
    if not (
        isinstance(name, str)
        and isinstance(timezone, str)
        and (cron is None) != (every_ms is None)
        and (cron is None or isinstance(cron, str))
        and (every_ms is None or (_is_int(every_ms) and every_ms > 0))
        and (last_tick is None or (_is_int(last_tick) and 0 <= last_tick <= rules.MAX_DEADLINE_MS))
    ):
        return None
    return name, cron, every_ms, timezone, last_tick


def _computable(cron: str | None, every_ms: int | None, timezone: str, at: int) -> bool:
    """True when this process can compute the spec's next run (its tzdata, its cronsim)."""
    try:
        Schedule("", cron, every_ms, ZoneInfo(timezone), None, False, 0).next_after(at)
    except Exception:
        return False
    return True


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
