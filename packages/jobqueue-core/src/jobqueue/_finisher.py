"""Group the outcomes a worker stores in one event-loop tick into one ``finish_many`` call."""

from __future__ import annotations

import asyncio

from ._contract import rules
from ._contract.records import Finish
from ._contract.storage import Storage

__all__ = ["Finisher"]


class Finisher:
    """Batches ``Finish`` outcomes of one worker: one storage call, one round trip, per tick.

    The first attempt to submit while no batch is open becomes the batch's
    leader: it yields once so that the attempts finishing in the same tick
    join, then stores them all and hands each its own answer. No task is
    created for this, so nothing outlives the attempts.
    """

    def __init__(self, storage: Storage, worker_id: str) -> None:
        self._storage = storage
        self._worker_id = worker_id
        self._open: list[tuple[Finish, asyncio.Future[bool]]] | None = None

    async def finish(self, outcome: Finish) -> bool:
        """Store one outcome; True when the worker still owned the job. Raises ``StorageError``."""
        if self._open is not None and len(self._open) < rules.MAX_BATCH:
            future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._open.append((outcome, future))
            return await future
        batch: list[tuple[Finish, asyncio.Future[bool]]] = []
        self._open = batch
        try:
            await asyncio.sleep(0)  # let the attempts finishing in this tick join
        finally:
            if self._open is batch:
                self._open = None
        try:
            # the protected primitive: the core built these outcomes itself, the public checks would repeat
            stored = await self._storage._finish(self._worker_id, [outcome, *(item for item, _ in batch)])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            raise
        for (_, future), ok in zip(batch, stored[1:], strict=True):
            if not future.done():
                future.set_result(ok)
        return stored[0]
