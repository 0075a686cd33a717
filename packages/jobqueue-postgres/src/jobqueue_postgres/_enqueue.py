"""Enqueue, on the pool or on the application's own connection inside its transaction."""

from __future__ import annotations

from collections.abc import Sequence

from jobqueue.storage import EnqueueOutcome, NewJob, StorageError, check_new_job, rules

from ._connection import Conn, Plumbing
from ._events import wake_channel
from ._records import encode_name, present, to_record

__all__ = ["EnqueueMixin", "clamp_ms"]


def clamp_ms(value: int) -> int:
    """Cap a duration so that ``now + value`` stays a bigint (``rules.later`` caps deadlines the same way)."""
    return min(value, rules.MAX_DEADLINE_MS)


class EnqueueMixin(Plumbing):
    """``_enqueue`` and the transactional ``enqueue_on`` / ``enqueue_many_on``."""

    _ns: bytes
    _channel: str

    async def _enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        return await self._enqueue_on(None, jobs)

    async def enqueue_on(
        self,
        connection: Conn,
        job_id: str,
        message: bytes,
        *,
        delay_ms: int = 0,
        priority: int = 0,
    ) -> EnqueueOutcome:
        """``enqueue`` on the caller's connection, inside the caller's transaction (see ``enqueue_many_on``)."""
        (outcome,) = await self.enqueue_many_on(connection, [NewJob(job_id, message, delay_ms, priority)])
        return outcome

    async def enqueue_many_on(self, connection: Conn, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        """``enqueue_many`` on the caller's asyncpg connection: the jobs exist if and only if it commits.

        Run it inside ``async with connection.transaction():`` with the
        application's own writes. The ``enqueued`` notifications are part of
        that transaction too: workers wake when it commits, never for a
        rollback. The schema must exist (connect this storage once).

        Raises:
            ValueError: an empty batch, a batch over ``rules.MAX_BATCH``, or a bad job.
            StorageError: the statement failed (the caller's transaction is then aborted).
        """
        jobs = list(jobs)
        if not jobs or len(jobs) > rules.MAX_BATCH:
            raise ValueError(f"jobs must hold 1 to {rules.MAX_BATCH} jobs, got {len(jobs)}")
        for job in jobs:
            check_new_job(job)
        return await self._enqueue_on(connection, jobs)

    async def _enqueue_on(self, connection: Conn | None, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        first: dict[str, NewJob] = {}
        for job in jobs:
            first.setdefault(job.id, job)
        outcomes: dict[str, EnqueueOutcome] = {}
        pending = list(first.values())
        now = 0
        # A duplicate's record can be invisible to the statement's snapshot (inserted by a transaction
        # that committed meanwhile) or gone already (cancelled): enqueue those again.
        for _ in range(5):
            rows = await self._fetch(
                connection,
                "enqueue",
                self._shared.sql.enqueue,
                self._ns,
                [encode_name(job.id, "job_id") for job in pending],
                [job.message for job in pending],
                [clamp_ms(job.delay_ms) for job in pending],
                [job.priority for job in pending],
                wake_channel(self._channel),
                rules.MAX_DEADLINE_MS,
            )
            retry: list[NewJob] = []
            for job, row in zip(pending, rows, strict=True):
                now = row[-1]
                if row[1]:
                    outcomes[job.id] = EnqueueOutcome(accepted=True)
                elif row[3] is not None:
                    outcomes[job.id] = EnqueueOutcome(
                        accepted=False, existing=present(to_record(tuple(row)[3:18]), now)
                    )
                else:
                    retry.append(job)
            if not retry:
                break
            pending = retry
        else:
            raise StorageError(
                f"postgres enqueue: {len(pending)} job(s) neither stored nor found after 5 tries"
            )
        result: list[EnqueueOutcome] = []
        for job in jobs:
            outcome = outcomes[job.id]
            if first[job.id] is not job and outcome.accepted:
                # A later job of the batch with the id of an accepted one is a duplicate of the stored record.
                stored = rules.new_record(first[job.id], now).record
                assert stored is not None
                outcome = EnqueueOutcome(accepted=False, existing=present(stored, now))
            elif first[job.id] is not job:
                outcome = EnqueueOutcome(accepted=False, existing=outcome.existing)
            result.append(outcome)
        return result
