"""Claims: ``SKIP LOCKED`` in one statement, and the wait on ``LISTEN/NOTIFY`` when nothing is ready.

A claim right after one that took every ready job waits at once when no
notification came in between (``Drained``), so a request costs one claim, not two.
"""

from __future__ import annotations

import asyncio

from jobqueue.storage import Claim, EventKind, rules

from ._connection import Plumbing, pg_errors
from ._enqueue import clamp_ms
from ._events import ClaimWaiter, Drained, notify_channel
from ._records import encode_name

__all__ = ["ClaimMixin"]

_RECHECK_SECONDS = 2.0
"""A blocked claim looks again this often even without a notification (a safety net, not the wake path)."""


class ClaimMixin(Plumbing):
    """``_claim``: one statement, then waits on the namespace's wake channel."""

    _ns: bytes
    _channel: str
    _wake: str

    async def _claim(self, worker_id: str, lease_ms: int, limit: int, timeout_ms: int) -> list[Claim]:
        worker = encode_name(worker_id, "worker_id")
        listener = self._shared.listener
        waiter = ClaimWaiter()
        # Wake-ups must be watched before looking, or a job enqueued in between is noticed only at the
        # safety re-check. Once the channel is listened to, that costs nothing, so it is the common path.
        watching = timeout_ms > 0 and listener.watch(self._wake, waiter)
        loop = asyncio.get_running_loop()
        try:
            drained = self._still_drained() if watching else None
            if drained is None:
                claims, due_ms = await self._claim_once(worker, lease_ms, limit)
                if claims or timeout_ms == 0:
                    return claims
            else:  # a claim here took every ready job and nothing woke since: looking again finds nothing
                claims, due_ms = [], drained.due_ms(loop.time())
            deadline = loop.time() + timeout_ms / 1000
            if not watching:
                with pg_errors("listen"):
                    await listener.add([self._wake], waiter)  # the first LISTEN of this namespace
                watching = True
                claims, due_ms = await self._claim_once(worker, lease_ms, limit)
            while not claims:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wait = min(remaining, _RECHECK_SECONDS)
                if due_ms is not None:
                    wait = min(wait, max(due_ms, 0) / 1000 + 0.001)
                await waiter.wait(wait)
                waiter.clear()
                claims, due_ms = await self._claim_once(worker, lease_ms, limit)
            return claims
        finally:
            if watching:
                listener.remove([self._wake], waiter)

    def _still_drained(self) -> Drained | None:
        """The last dry claim's knowledge, if no job can have become ready since (see ``Drained``)."""
        drained = self._shared.drained.get(self._wake)
        if drained is None or drained.mark != self._shared.listener.mark(self._wake):
            return None
        if drained.due_at is not None and drained.due_at <= asyncio.get_running_loop().time():
            return None
        return drained

    async def _claim_once(self, worker: bytes, lease_ms: int, limit: int) -> tuple[list[Claim], int | None]:
        """Claim what is ready, and the ms until the next scheduled job falls due (None: none)."""
        sql = self._shared.sql
        mark = self._shared.listener.mark(self._wake)  # before the statement: a later wake-up moves it
        rows = await self._fetch(
            None,
            "claim",
            sql.claim,
            self._ns,
            worker,
            clamp_ms(lease_ms),
            limit,
            notify_channel(self._channel, EventKind.PROCESSING),
            rules.MAX_DEADLINE_MS,
        )
        due_ms: int | None = rows[0][4]
        claims = (
            []
            if rows[0][0] is None
            else [Claim(bytes(row[0]).decode("utf-8"), bytes(row[1]), row[2]) for row in rows]
        )
        if mark is not None and len(claims) < limit:
            due_at = None if due_ms is None else asyncio.get_running_loop().time() + due_ms / 1000
            self._shared.drained[self._wake] = Drained(mark, due_at)
        else:
            self._shared.drained.pop(self._wake, None)
        return claims, due_ms
