"""The optional capabilities of the storage contract: mixins a storage declares by subclassing."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from .._durations import validate_job_id
from .._types import JobState
from . import rules
from .records import EnqueueOutcome, JobPage, NewJob, WorkerRecord

__all__ = [
    "Capability",
    "ControlChannel",
    "LeaderLock",
    "Migrations",
    "Monitoring",
    "TransactionalEnqueue",
    "capabilities",
]


class Capability(StrEnum):
    """An optional part of the contract."""

    MONITORING = "monitoring"
    LEADER_LOCK = "leader_lock"
    CONTROL_CHANNEL = "control_channel"
    MIGRATIONS = "migrations"
    TRANSACTIONAL_ENQUEUE = "transactional_enqueue"


class Monitoring(abc.ABC):
    """Capability: what dashboards and operators read and clean up."""

    async def counts(self) -> dict[JobState, int]:
        """Number of live jobs per state (every state present, zeros included)."""
        counts = await self._counts()
        return {state: counts.get(state, 0) for state in JobState}

    async def list_jobs(
        self, *, state: JobState | None = None, prefix: str = "", cursor: str | None = None, limit: int = 50
    ) -> JobPage:
        """Page through live jobs, newest first, filtered by state and id prefix."""
        if state is not None:
            state = JobState(state)
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, not {type(prefix).__name__}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, got {limit!r}")
        return await self._list_jobs(state, prefix, cursor, limit)

    async def list_namespaces(self) -> list[str]:
        """Namespaces that hold jobs or workers in this storage, sorted."""
        return sorted(await self._list_namespaces())

    async def list_workers(self) -> list[WorkerRecord]:
        """Registered workers, and lapsed ones that still hold jobs, by id."""
        return sorted(await self._list_workers(), key=lambda worker: worker.id)

    async def purge(self, states: Iterable[JobState]) -> int:
        """Delete every job in the given finished states; return how many (``rules.purgeable``)."""
        return await self._purge(rules.purgeable(states))

    async def retry_failed(self, job_id: str) -> bool:
        """Queue a ``failed`` job again with its attempts reset (``rules.reset_failed``)."""
        return await self._retry_failed(validate_job_id(job_id))

    @abc.abstractmethod
    async def _counts(self) -> Mapping[JobState, int]:
        """Live jobs per state."""

    @abc.abstractmethod
    async def _list_jobs(
        self, state: JobState | None, prefix: str, cursor: str | None, limit: int
    ) -> JobPage:
        """One page of live jobs, newest first (``paging.page_jobs`` does it for records in reach)."""

    @abc.abstractmethod
    async def _list_namespaces(self) -> Iterable[str]:
        """Namespaces with jobs or workers."""

    @abc.abstractmethod
    async def _list_workers(self) -> Iterable[WorkerRecord]:
        """Live registrations, and lapsed ones that still hold jobs."""

    @abc.abstractmethod
    async def _purge(self, states: frozenset[JobState]) -> int:
        """Delete the jobs in ``states`` (already checked to be finished ones)."""

    @abc.abstractmethod
    async def _retry_failed(self, job_id: str) -> bool:
        """Apply ``rules.reset_failed`` atomically; False when the job is not failed."""


class LeaderLock(abc.ABC):
    """Capability: a lock with an owner and a TTL, for leader election."""

    @abc.abstractmethod
    async def acquire_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take ``key`` for ``owner`` for ``ttl_ms``, or renew it if ``owner`` holds it.

        False when another owner holds a live lock.
        """

    @abc.abstractmethod
    async def release_lock(self, key: str, owner: str) -> bool:
        """Release ``key`` if ``owner`` holds it; True when it was released."""


class ControlChannel:
    """Capability marker: abort requests are also published on ``Channel.CONTROL``.

    A storage that declares it delivers ``abort`` events to ``subscribe(Channel.CONTROL)``,
    so a running job stops at once; without it, at the worker's next heartbeat.
    """


class Migrations(abc.ABC):
    """Capability: a versioned schema, created or upgraded by ``migrate`` (and ``jobqueue migrate``)."""

    @abc.abstractmethod
    async def migrate(self) -> int:
        """Create or upgrade the schema now; return its version.

        Raises:
            StorageError: the stored schema is newer than this code, or the server failed.
        """


class TransactionalEnqueue(abc.ABC):
    """Capability: enqueue on the application's own connection, inside its transaction.

    ``Queue.enqueue(..., connection=conn)`` uses it: the jobs exist if and only
    if that transaction commits.
    """

    @abc.abstractmethod
    async def enqueue_many_on(self, connection: Any, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        """``enqueue_many`` on ``connection`` (the backend's own connection type), in its transaction."""


_CAPABILITIES: tuple[tuple[type, Capability], ...] = (
    (Monitoring, Capability.MONITORING),
    (LeaderLock, Capability.LEADER_LOCK),
    (ControlChannel, Capability.CONTROL_CHANNEL),
    (Migrations, Capability.MIGRATIONS),
    (TransactionalEnqueue, Capability.TRANSACTIONAL_ENQUEUE),
)


def capabilities(storage: object) -> frozenset[Capability]:
    """The optional capabilities a storage declares (by the mixins it subclasses)."""
    return frozenset(capability for mixin, capability in _CAPABILITIES if isinstance(storage, mixin))
