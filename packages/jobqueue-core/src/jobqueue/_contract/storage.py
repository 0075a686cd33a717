"""The storage contract (v2): a small set of primitives, and capabilities on top.

Storage stores; the core decides. ``Storage`` is the base class a backend
subclasses. Its public methods check their arguments once and call the
protected primitives (``_enqueue``, ``_claim``, ``_finish`` ...) that each
backend writes: 15 abstract members in all. How a record changes is decided
by the pure functions of ``rules``; a backend applies them (memory, files) or
mirrors them server-side (Lua, SQL) with a comment naming the function.

Optional capabilities are mixins, declared by subclassing, never probed:

- ``Monitoring``: counts, job listing, namespaces, workers, purge, retry of failed jobs;
- ``LeaderLock``: a lock with an owner and a TTL, for leader election;
- ``ControlChannel``: abort requests are also pushed on ``Channel.CONTROL``
  (without it a worker sees an abort at its next heartbeat);
- ``Migrations``: a versioned schema (``jobqueue migrate``);
- ``TransactionalEnqueue``: enqueue inside the application's own transaction.

``capabilities(storage)`` names what a storage offers.

A ``Storage`` instance is bound to one namespace (``name``). ``namespace(n)``
returns a view on another namespace that shares the same connections;
``connect``/``disconnect`` are idempotent and ref-counted across views.
Every method may raise ``StorageError``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Self

from .._durations import validate_job_id
from .._types import JobState
from . import rules
from .capabilities import ControlChannel
from .checks import check_batch, check_finish, check_ids, check_info, check_ms, check_new_job, check_worker
from .records import (
    Channel,
    Claim,
    EnqueueOutcome,
    Finish,
    JobRecord,
    NewJob,
    Recovery,
    Revoked,
    StorageEvent,
    TtlOutcome,
)

__all__ = ["Storage"]


class Storage(abc.ABC):
    """Abstract base class of job storages: public methods check, primitives store.

    A backend writes the abstract members below; everything else here is
    the contract's public face, used by the core, tools and tests.
    """

    # ---------------------------------------------------------------- lifecycle

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The namespace this instance is bound to."""

    def namespace(self, name: str) -> Self:
        """Return a view on namespace ``name`` sharing this storage's connections.

        Namespaces are isolated: jobs, events, workers and locks of one are
        invisible to another.

        Raises:
            ValueError: ``name`` is not a non-empty str (or the backend refuses it).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"namespace name must be a non-empty str, got {name!r}")
        return self._view(name)

    @abc.abstractmethod
    def _view(self, name: str) -> Self:
        """A view on namespace ``name`` sharing this storage's connections (name already checked)."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open connections. Idempotent; each call must be paired with ``disconnect``."""

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Release one ``connect``; the last release closes the connections."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    # -------------------------------------------------------------------- queue

    async def enqueue(
        self, job_id: str, message: bytes, *, delay_ms: int = 0, priority: int = 0
    ) -> EnqueueOutcome:
        """Store a new job unless one with this id is live, atomically (see ``_enqueue``)."""
        (outcome,) = await self.enqueue_many([NewJob(job_id, message, delay_ms, priority)])
        return outcome

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        """``enqueue`` for up to ``rules.MAX_BATCH`` jobs in one call; outcomes in order.

        Raises:
            ValueError: an empty batch, a batch over the limit, or a bad job.
        """
        jobs = list(jobs)
        check_batch(jobs, "jobs")
        for job in jobs:
            check_new_job(job)
        return await self._enqueue(jobs)

    @abc.abstractmethod
    async def _enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        """Store each job unless one with its id is live; one outcome per job, in order.

        Per job, atomically: with no live record, store ``rules.new_record``
        (queued at the tail, or scheduled ``delay_ms`` from now) and publish
        ``enqueued``; with a live record change nothing and return it. A later
        job of the batch with the id of an earlier accepted one is a duplicate
        of it. Of many concurrent calls with one id exactly one is accepted.
        """

    async def dequeue(self, worker_id: str, *, lease_ms: int, timeout_ms: int, limit: int = 1) -> list[Claim]:
        """Claim up to ``limit`` ready jobs for ``worker_id`` (see ``_claim``)."""
        check_worker(worker_id)
        check_ms(lease_ms, "lease_ms", 1)
        check_ms(timeout_ms, "timeout_ms")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, got {limit!r}")
        return await self._claim(worker_id, lease_ms, min(limit, rules.MAX_BATCH), timeout_ms)

    @abc.abstractmethod
    async def _claim(self, worker_id: str, lease_ms: int, limit: int, timeout_ms: int) -> list[Claim]:
        """Claim up to ``limit`` ready jobs, highest priority first, then oldest first.

        Due scheduled jobs and retries become ready first (``rules.promote``).
        Each claim applies ``rules.claim`` atomically and publishes
        ``processing``; a cancelled job is never claimed. With nothing ready,
        waits up to ``timeout_ms`` (0: do not wait), waking as soon as a job is
        enqueued or falls due; returns ``[]`` on timeout.
        """

    async def complete(self, job_id: str, worker_id: str, result: bytes, ttl_ms: int) -> bool:
        """Store the result: ``completed`` for ``ttl_ms`` (False: the worker lost the job)."""
        return (await self.finish_many(worker_id, [Finish.complete(job_id, result, ttl_ms)]))[0]

    async def fail(self, job_id: str, worker_id: str, error: bytes, ttl_ms: int) -> bool:
        """Store the error: ``failed`` for ``ttl_ms`` (False: the worker lost the job)."""
        return (await self.finish_many(worker_id, [Finish.fail(job_id, error, ttl_ms)]))[0]

    async def retry(self, job_id: str, worker_id: str, error: bytes, delay_ms: int) -> bool:
        """Store the error: ``failing``, due again after ``delay_ms`` (False: the worker lost the job)."""
        return (await self.finish_many(worker_id, [Finish.retry(job_id, error, delay_ms)]))[0]

    async def release(self, job_id: str, worker_id: str) -> bool:
        """Give a claimed job back to the head of the queue, its attempt not counted."""
        return (await self.finish_many(worker_id, [Finish.release(job_id)]))[0]

    async def finish_many(self, worker_id: str, outcomes: Sequence[Finish]) -> list[bool]:
        """End several attempts of one worker in one call; True for each one stored."""
        check_worker(worker_id)
        outcomes = list(outcomes)
        check_batch(outcomes, "outcomes")
        for outcome in outcomes:
            check_finish(outcome)
        return await self._finish(worker_id, outcomes)

    @abc.abstractmethod
    async def _finish(self, worker_id: str, outcomes: Sequence[Finish]) -> list[bool]:
        """Apply ``rules.finish`` to each job the worker still owns (``rules.owned``).

        Atomic per job with the removal from the worker's holdings and the
        event (``completed``/``failed`` with ``rules.inline`` data,
        ``failing``, ``requeued``). A job the worker no longer owns is left
        alone and gets False.
        """

    async def heartbeat(
        self,
        worker_id: str,
        *,
        ttl_ms: int | None,
        job_ids: Sequence[str] = (),
        lease_ms: int = 0,
        info: bytes = b"",
    ) -> dict[str, Revoked]:
        """Refresh the worker's registration for ``ttl_ms`` and renew its jobs' leases; see ``_heartbeat``.

        ``info`` (up to ``rules.MAX_WORKER_INFO`` bytes) is stored with the
        registration and read back by ``Monitoring.list_workers``.
        """
        check_worker(worker_id)
        if ttl_ms is not None:
            check_ms(ttl_ms, "ttl_ms", 1)
        ids = check_ids(job_ids)
        if ids:
            check_ms(lease_ms, "lease_ms", 1)
        check_info(info)
        return await self._heartbeat(worker_id, ttl_ms, ids, lease_ms, info)

    async def register_worker(self, worker_id: str, ttl_ms: int, info: bytes = b"") -> None:
        """Register a worker (with ``info``) or refresh its heartbeat; it lapses after ``ttl_ms``."""
        await self.heartbeat(worker_id, ttl_ms=ttl_ms, info=info)

    async def renew_leases(self, worker_id: str, job_ids: Sequence[str], lease_ms: int) -> dict[str, Revoked]:
        """Extend leases to at least ``now + lease_ms``; return the jobs the worker must stop, and why."""
        return await self.heartbeat(worker_id, ttl_ms=None, job_ids=job_ids, lease_ms=lease_ms)

    @abc.abstractmethod
    async def _heartbeat(
        self, worker_id: str, ttl_ms: int | None, job_ids: Sequence[str], lease_ms: int, info: bytes
    ) -> dict[str, Revoked]:
        """One call for a worker's liveness.

        With ``ttl_ms``, register the worker (or refresh it) until ``now +
        ttl_ms``, its ``info`` replacing the one stored (without ``ttl_ms``
        ``info`` is ignored), publishing ``rules.register_worker``'s event
        (``worker_joined`` when it was not registered, nothing on a renewal);
        a lapsed registration must disappear within ``ttl_ms`` without anyone
        listing workers. For each of ``job_ids`` apply
        ``rules.renew`` (a lease only moves forward) and report the ids the
        worker must stop: ``LOST`` when no longer its own, ``ABORTED`` when an
        abort was requested.
        """

    async def unregister_worker(self, worker_id: str) -> None:
        """Remove a worker's registration. Jobs it still holds stay recoverable."""
        await self._unregister_worker(check_worker(worker_id))

    @abc.abstractmethod
    async def _unregister_worker(self, worker_id: str) -> None:
        """Remove the registration; the jobs the worker holds keep their leases.

        Publishes ``rules.unregister_worker``'s event (``worker_left`` when the
        registration was live).
        """

    async def set_progress(self, job_id: str, worker_id: str, data: bytes) -> bool:
        """Store a running job's progress value and publish ``progress``; False when not owned."""
        validate_job_id(job_id)
        check_worker(worker_id)
        if not isinstance(data, bytes):
            raise TypeError(f"progress data must be bytes, not {type(data).__name__}")
        if len(data) > rules.INLINE_RESULT_LIMIT:
            raise ValueError(
                f"progress must encode to at most {rules.INLINE_RESULT_LIMIT} bytes, got {len(data)}"
            )
        return await self._set_progress(job_id, worker_id, data)

    @abc.abstractmethod
    async def _set_progress(self, job_id: str, worker_id: str, data: bytes) -> bool:
        """Apply ``rules.set_progress`` atomically and publish its ``progress`` event (with the data)."""

    async def cancel(self, job_id: str) -> JobState | None:
        """Cancel a job that has not started; return the state it had (None: no record)."""
        return await self._cancel(validate_job_id(job_id), abort=False)

    async def request_abort(self, job_id: str) -> JobState | None:
        """Stop a job wherever it is; return the state it had (None: no record)."""
        return await self._cancel(validate_job_id(job_id), abort=True)

    @abc.abstractmethod
    async def _cancel(self, job_id: str, *, abort: bool) -> JobState | None:
        """Apply ``rules.cancel`` atomically with respect to claims; return the prior state.

        ``queued``/``failing`` jobs are deleted (``cancelled`` published);
        ``failed`` ones are cleared by ``cancel``; with ``abort`` a
        ``processing`` job is flagged and ``abort`` published on ``control``.
        """

    async def recover_stalled(self) -> Recovery:
        """Put every job whose lease has expired back at the head of the queue (see ``_recover_stalled``)."""
        return await self._recover_stalled()

    @abc.abstractmethod
    async def _recover_stalled(self) -> Recovery:
        """Apply ``rules.recover`` to every job where ``rules.is_stalled``, oldest lease first.

        Atomic per job with respect to ``_finish``: a late finish of a
        recovered job returns False. Publishes ``stalled`` then ``requeued``
        for each. Returns them, with the ms until the earliest remaining lease
        expires (None: no job is processing), or fewer to be called again soon
        for a job it skipped (locked elsewhere). A storage that cannot expire
        records by itself may also delete expired ones here.
        """

    # ---------------------------------------------------------------- job state

    async def get(self, job_id: str) -> JobRecord | None:
        """The live record of a job, or None (never stored, cancelled or expired)."""
        return (await self._get_many([validate_job_id(job_id)]))[0]

    async def get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """``get`` for many ids in one call, in the order given."""
        ids = check_ids(job_ids)
        return await self._get_many(ids) if ids else []

    @abc.abstractmethod
    async def _get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """The live records (``rules.is_live``) of ``job_ids``, in order; None where there is none."""

    async def update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        """Make a finished record expire ``ttl_ms`` from now (``rules.update_ttl``)."""
        return await self._update_ttl(validate_job_id(job_id), check_ms(ttl_ms, "ttl_ms", 1))

    @abc.abstractmethod
    async def _update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        """Apply ``rules.update_ttl`` atomically."""

    # ------------------------------------------------------------ notifications

    def subscribe(self, *channels: Channel) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        """Listen to the namespace's channels.

        Events published after ``__aenter__`` returns are delivered, in order
        per publisher; none published before. A subscriber to several
        channels receives an event once per channel it was published on.
        Delivery is best effort (a dropped connection loses events), so
        callers keep a fallback.

        Raises:
            ValueError: no channel, or ``control`` on a storage without ``ControlChannel``.
        """
        if not channels:
            raise ValueError("subscribe needs at least one channel")
        chosen = frozenset(Channel(channel) for channel in channels)
        if Channel.CONTROL in chosen and not isinstance(self, ControlChannel):
            raise ValueError(f"{type(self).__name__} has no control channel (capability ControlChannel)")
        return self._subscribe(chosen)

    @abc.abstractmethod
    def _subscribe(
        self, channels: frozenset[Channel]
    ) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        """A subscription to ``channels`` (see ``subscribe``)."""
