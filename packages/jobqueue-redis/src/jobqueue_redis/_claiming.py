"""How a Redis claim waits when nothing is ready: ``BZPOPMIN`` on the wake marker, or events.

``dequeue`` runs the claim script; only when it claims nothing and the caller
wants to wait does it block: ``BZPOPMIN`` on the namespace's wake marker with
the claim script queued behind it on the same connection (one round trip), or,
when the blocking connection is busy or a job falls due soon, the ``events``
channel with a local timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from jobqueue.storage import Channel, Claim, Finish, StorageEvent
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from ._connection import ServerConnections
from ._errors import redis_errors
from ._keys import Keys
from ._records import claims_from_reply
from ._scripts import scripts_for
from ._wakes import WAKE_KINDS

__all__ = ["RedisClaimMixin"]


_background: set[asyncio.Task[Any]] = set()


def _in_background(call: Coroutine[Any, Any, Any]) -> None:
    """Run a best-effort call that nobody waits for (its failure only costs a later wake-up)."""
    task = asyncio.ensure_future(call)
    _background.add(task)
    task.add_done_callback(_forget)


def _forget(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a failed wake-up is not worth a log line


class RedisClaimMixin:
    """``_claim`` and its waits; ``RedisStorage`` provides ``_run``, ``_finish`` and the connections."""

    _keys: Keys
    _emptied: dict[
        str, tuple[float, int | None]
    ]  # worker -> (when, next due) of a claim that emptied `ready`

    async def _run(self, script: str, args: Sequence[Any] = (), keys: Sequence[str] = ()) -> Any:
        raise NotImplementedError

    async def _finish(self, worker_id: str, outcomes: Sequence[Finish]) -> list[bool]:
        raise NotImplementedError

    def _conns(self) -> ServerConnections:
        raise NotImplementedError

    if TYPE_CHECKING:  # Storage's, which comes after this mixin

        def subscribe(
            self, *channels: Channel
        ) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]: ...

    async def _claim_once(
        self, worker_id: str, lease_ms: int, limit: int, *, woken: bool = False
    ) -> tuple[list[Claim], int | None]:
        reply = await self._run("claim", [worker_id, lease_ms, limit, "1" if woken else "0"])
        return claims_from_reply(reply)

    async def _claim(self, worker_id: str, lease_ms: int, limit: int, timeout_ms: int) -> list[Claim]:
        conns = self._conns()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        emptied = self._emptied.pop(worker_id, None)
        if emptied is not None and timeout_ms > 0 and not conns.blocking_lock.locked():
            # This worker's last claim took the last ready jobs, and since then a job made
            # ready set the marker (claim.lua): block on it at once. On an idle queue this
            # saves an empty claim, whose round trip delayed the finish of the job just taken.
            at, due = emptied
            next_due = None if due is None else max(0, due - int((loop.time() - at) * 1000))
            async with conns.blocking_lock:
                claims, next_due = await self._wait_blocking(
                    conns, worker_id, lease_ms, limit, deadline, next_due
                )
        else:
            claims, next_due = await self._claim_once(worker_id, lease_ms, limit)
            if not claims and timeout_ms > 0:
                if conns.blocking_lock.locked():
                    claims, next_due = await self._wait_for_events(worker_id, lease_ms, limit, deadline)
                else:
                    async with conns.blocking_lock:
                        claims, next_due = await self._wait_blocking(
                            conns, worker_id, lease_ms, limit, deadline, next_due
                        )
        if 0 < len(claims) < limit:  # fewer than asked: `ready` is empty (claim.lua)
            self._emptied[worker_id] = loop.time(), next_due
        return claims

    async def _wait_blocking(
        self,
        conns: ServerConnections,
        worker_id: str,
        lease_ms: int,
        limit: int,
        deadline: float,
        next_due: int | None,
    ) -> tuple[list[Claim], int | None]:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return [], next_due
            if next_due is not None and next_due / 1000 < remaining:
                # A server times blocked commands out on its cron (100 ms at the default hz),
                # too coarse for a job due at a given ms: wait on events with a local timer.
                due = min(deadline, loop.time() + (next_due + 1) / 1000)
                claims, next_due = await self._wait_for_events(worker_id, lease_ms, limit, due)
                if claims:
                    return claims, next_due
                claims, next_due = await self._claim_once(worker_id, lease_ms, limit)
                if claims:
                    return claims, next_due
                continue
            popped, claimed = await self._pop_and_claim(conns, remaining, worker_id, lease_ms, limit)
            if task is not None and task.cancelling() > cancelling:
                # redis-py can return a reply that arrived together with a cancellation and
                # drop the cancellation; honour it, giving back what it claimed (nothing is
                # lost) and the wake-up it took to the next blocked worker.
                if claimed is not None and claimed[0]:
                    releases = [Finish.release(claim.id) for claim in claimed[0]]
                    _in_background(self._finish(worker_id, releases))
                if popped is not None:
                    _in_background(self._run("wake"))
                raise asyncio.CancelledError
            if claimed is None:
                claimed = await self._claim_once(worker_id, lease_ms, limit, woken=popped is not None)
            claims, next_due = claimed
            if claims:
                return claims, next_due

    async def _pop_and_claim(
        self, conns: ServerConnections, timeout: float, worker_id: str, lease_ms: int, limit: int
    ) -> tuple[Any, tuple[list[Claim], int | None] | None]:
        """``BZPOPMIN`` on the wake marker with the claim script queued behind it: one round trip.

        The server runs the claim once the pop returns (woken or timed out); a woken
        claim passes the wake-up on while jobs remain, which is harmless after a
        timeout. Returns the pop's reply and the claim's, None when the claim must
        run apart (a cluster, or the script is not loaded).
        """
        marker = self._keys.fixed("marker")
        pop = ("BZPOPMIN", marker, f"{max(timeout, 0.001):.3f}")
        if isinstance(conns.blocking, RedisCluster):
            with redis_errors("dequeue (BZPOPMIN)"):
                return await conns.blocking.execute_command(*pop), None
        sha = scripts_for(conns.commands)["claim"].sha
        keys, args = self._keys.fixed_all(), [*self._keys.channels(), worker_id, lease_ms, limit, "1"]
        pipe = conns.blocking.pipeline(transaction=False)
        pipe.execute_command(*pop)
        pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)
        with redis_errors("dequeue (BZPOPMIN)"):
            popped, claimed = await pipe.execute(raise_on_error=False)
            if isinstance(popped, Exception):
                raise popped
        if isinstance(claimed, NoScriptError):
            return popped, None
        with redis_errors("claim"):
            if isinstance(claimed, Exception):
                raise claimed
        return popped, claims_from_reply(claimed)

    async def _wait_for_events(
        self, worker_id: str, lease_ms: int, limit: int, deadline: float
    ) -> tuple[list[Claim], int | None]:
        # The blocking connection is busy (another namespace or task waits on it), or a job
        # falls due soon: wait for enqueue events on the shared pub/sub connection instead.
        async with self.subscribe(Channel.EVENTS) as events:
            while True:
                claims, next_due = await self._claim_once(worker_id, lease_ms, limit)
                if claims:
                    return claims, next_due
                wait = deadline - asyncio.get_running_loop().time()
                if wait <= 0:
                    return [], next_due
                if next_due is not None:
                    wait = min(wait, (next_due + 1) / 1000)
                try:
                    async with asyncio.timeout(wait):
                        async for event in events:
                            if event.kind in WAKE_KINDS:
                                break
                except TimeoutError:
                    pass
