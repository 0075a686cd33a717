"""``JobTable``: the records of one namespace, with finished ones kept out of the garbage collector's way.

A drain leaves every finished job behind until its result expires. A
``JobRecord`` (a slots dataclass) is always tracked by CPython's cyclic
garbage collector, so 100,000 kept results made every full collection walk
100,000 more objects. A record that waits out a TTL (``expires_at`` set) is
therefore stored as a row: a tuple of str, bytes, int, bool and None only,
which the collector stops tracking the first time it sees it. Its state is
stored as the plain ``str`` value, since enum members are tracked objects.
Reading such a record rebuilds the ``JobRecord``.

Records still in play stay ``JobRecord`` objects: each is read at least once
more by a rule, and rebuilding a frozen dataclass costs more than the
collector saves on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from .._contract.records import JobRecord
from .._types import JobState

__all__ = ["JobTable"]

_Row = tuple[
    str,  # id
    str,  # state (its value)
    bytes,  # message
    int,  # created_at
    int,  # updated_at
    int,  # attempts
    str | None,  # worker_id
    bytes | None,  # result
    bytes | None,  # error
    int | None,  # run_at
    int | None,  # lease_until
    int | None,  # expires_at
    int,  # priority
    bool,  # abort_requested
    bytes | None,  # progress
]
_STATE: Final = 1  # the position of the state in a row
_STATES = {state.value: state for state in JobState}


def _to_row(r: JobRecord) -> _Row:
    return (
        r.id,
        r.state.value,
        r.message,
        r.created_at,
        r.updated_at,
        r.attempts,
        r.worker_id,
        r.result,
        r.error,
        r.run_at,
        r.lease_until,
        r.expires_at,
        r.priority,
        r.abort_requested,
        r.progress,
    )


def _from_row(row: _Row) -> JobRecord:
    return JobRecord(row[0], _STATES[row[_STATE]], *row[2:])


class JobTable:
    """Every record of a namespace by job id; a job is in ``_live`` or ``_kept``, never both."""

    def __init__(self) -> None:
        self._live: dict[str, JobRecord] = {}
        self._kept: dict[str, _Row] = {}  # records waiting out their TTL, as untracked rows

    def __len__(self) -> int:
        return len(self._live) + len(self._kept)

    def get(self, job_id: str) -> JobRecord | None:
        """The record of ``job_id``, or None."""
        record = self._live.get(job_id)
        if record is not None:
            return record
        row = self._kept.get(job_id)
        return None if row is None else _from_row(row)

    def live(self, job_id: str) -> JobRecord:
        """The record of a job known to be in play (ready or processing)."""
        return self._live[job_id]

    def set(self, job_id: str, record: JobRecord | None) -> JobRecord | None:
        """Store ``record`` as the job's record (None: delete it); return the in-play record it replaced.

        A replaced record that was waiting out its TTL is not rebuilt: nothing
        about it needs undoing.
        """
        old = self._live.pop(job_id, None)
        if old is None:
            self._kept.pop(job_id, None)
        if record is not None:
            if record.expires_at is None:
                self._live[job_id] = record
            else:
                self._kept[job_id] = _to_row(record)
        return old

    def records(self, state: JobState | None = None) -> Iterator[JobRecord]:
        """Every record (in ``state`` only, if given)."""
        for record in self._live.values():
            if state is None or record.state is state:
                yield record
        for row in self._kept.values():
            if state is None or row[_STATE] == state.value:
                yield _from_row(row)

    def ids(self, states: Iterable[JobState]) -> list[str]:
        """The ids of every job in one of ``states``."""
        wanted = frozenset(states)
        values = {state.value for state in wanted}
        return [job_id for job_id, r in self._live.items() if r.state in wanted] + [
            job_id for job_id, row in self._kept.items() if row[_STATE] in values
        ]

    def counts(self) -> dict[JobState, int]:
        """How many jobs are in each state (every state present)."""
        counts = dict.fromkeys(JobState, 0)
        for record in self._live.values():
            counts[record.state] += 1
        for row in self._kept.values():
            counts[_STATES[row[_STATE]]] += 1
        return counts
