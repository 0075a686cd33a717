"""Reaper leadership when a pass is held up longer than the leader lock lives."""

from __future__ import annotations

import asyncio

from jobqueue import LeaderElection, MemoryStorage, Reaper
from jobqueue.storage import Recovery
from jobqueue_conformance import wait_until

ELECTION = LeaderElection(lock_ttl=0.6, renew_interval=0.2, retry_interval=0.1)


class HeldUpStorage(MemoryStorage):
    """A MemoryStorage whose ``recover_stalled`` waits while ``gate`` is clear (a job lock held elsewhere)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()

    async def _recover_stalled(self) -> Recovery:
        await self.gate.wait()
        return await super()._recover_stalled()


def _record(reaper: Reaper) -> list[str]:
    events: list[str] = []
    reaper.on("leadership_acquired", lambda: events.append("acquired"))
    reaper.on("leadership_lost", lambda: events.append("lost"))
    return events


async def _true(value: bool) -> bool:
    return value


async def test_a_leader_held_up_past_its_lock_ttl_reports_the_loss_and_the_next_acquisition() -> None:
    storage = HeldUpStorage()
    first, second = Reaper(storage, leader_election=ELECTION), Reaper(storage, leader_election=ELECTION)
    first_events, second_events = _record(first), _record(second)
    async with first:
        await wait_until(lambda: _true(first.is_leader), message="the only reaper leads")
        async with second:
            storage.gate.clear()  # both reapers' passes now wait: the first cannot renew its lock
            await wait_until(
                lambda: _true(second.is_leader), message="the follower takes the lapsed lock", timeout=5
            )
            assert not first.is_leader, "two reapers say they lead: the first one's lock ran out unrenewed"
            assert first_events == ["acquired", "lost"]
        assert second_events == ["acquired", "lost"]
        storage.gate.set()
        await wait_until(lambda: _true(first.is_leader), message="the first reaper leads again", timeout=5)
        assert first_events == ["acquired", "lost", "acquired"], "leading again must be reported"
