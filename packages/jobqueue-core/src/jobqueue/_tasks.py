"""Ending background tasks for sure."""

from __future__ import annotations

import asyncio

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(*tasks: asyncio.Task[None] | None) -> None:
    """Cancel ``tasks`` and wait until every one has ended.

    A cancellation can be swallowed by a library caught mid-operation (a reply
    arriving as the cancel lands), so cancel again until the task is done.
    """
    pending = {task for task in tasks if task is not None and not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
