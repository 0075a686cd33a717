"""``EventBuffer``, the bounded queue between a storage's reader and a subscriber."""

from __future__ import annotations

import asyncio

import pytest
from jobqueue.storage import EventBuffer

pytestmark = pytest.mark.memory


async def _drain(buffer: EventBuffer[int]) -> list[int]:
    buffer.close()
    return [item async for item in buffer]


async def test_items_a_consumer_takes_in_the_reader_are_not_buffered() -> None:
    buffer: EventBuffer[int] = EventBuffer()
    taken: list[int] = []

    def take(item: int) -> bool:
        if item % 2 == 0:
            taken.append(item)
            return True
        return False

    buffer.intercept(take)
    for item in range(6):
        buffer.put(item)
    assert taken == [0, 2, 4]
    assert await asyncio.wait_for(_drain(buffer), 5) == [1, 3, 5]


async def test_without_an_interceptor_every_item_is_buffered_and_the_oldest_go_first_when_full() -> None:
    buffer: EventBuffer[int] = EventBuffer(limit=3)
    buffer.intercept(lambda item: True)
    buffer.intercept(None)  # removed again
    for item in range(5):
        buffer.put(item)
    assert buffer.dropped == 2
    assert await asyncio.wait_for(_drain(buffer), 5) == [2, 3, 4]
