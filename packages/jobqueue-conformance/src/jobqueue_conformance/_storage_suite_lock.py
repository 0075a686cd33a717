"""Storage suite, leader-lock group: the optional ``LeaderLock`` capability."""

from __future__ import annotations

from jobqueue.storage import Storage, now_ms

from ._helpers import require_leader_lock, wait_until

__all__ = ["StorageLockTests"]


class StorageLockTests:
    """``acquire_lock`` and ``release_lock``; skipped for storages without ``LeaderLock``."""

    async def test_lock_has_one_owner_at_a_time(self, storage: Storage) -> None:
        lock = require_leader_lock(storage)
        assert await lock.acquire_lock("leader", "owner-a", 60_000), "rule: a free lock can be acquired"
        assert await lock.acquire_lock("leader", "owner-a", 60_000), "rule: the owner can renew its lock"
        assert not await lock.acquire_lock("leader", "owner-b", 60_000), (
            "rule: a lock held by another owner is refused"
        )
        assert await lock.acquire_lock("other-key", "owner-b", 60_000), (
            "rule: locks of different keys are independent"
        )

    async def test_release_frees_the_lock_for_its_owner_only(self, storage: Storage) -> None:
        lock = require_leader_lock(storage)
        assert not await lock.release_lock("leader", "owner-a"), "rule: releasing a free lock returns False"
        await lock.acquire_lock("leader", "owner-a", 60_000)
        assert not await lock.release_lock("leader", "owner-b"), "rule: only the owner can release a lock"
        assert not await lock.acquire_lock("leader", "owner-b", 60_000), (
            "rule: a refused release changes nothing"
        )
        assert await lock.release_lock("leader", "owner-a"), "rule: the owner releases its lock"
        assert await lock.acquire_lock("leader", "owner-b", 60_000), "rule: a released lock can be taken"

    async def test_an_expired_lock_can_be_taken_by_another_owner(self, storage: Storage) -> None:
        lock = require_leader_lock(storage)
        assert await lock.acquire_lock("leader", "owner-a", 150), "rule: a free lock can be acquired"

        async def taken() -> bool:
            return await lock.acquire_lock("leader", "owner-b", 60_000)

        await wait_until(taken, message="rule: a lock whose ttl ran out can be taken by another owner")
        assert not await lock.acquire_lock("leader", "owner-a", 60_000), "rule: the new owner holds the lock"
        assert not await lock.release_lock("leader", "owner-a"), "rule: an expired owner cannot release"

    async def test_renewal_extends_the_lock(self, storage: Storage) -> None:
        lock = require_leader_lock(storage)
        first_ttl_over = now_ms() + 150 + 100
        await lock.acquire_lock("leader", "owner-a", 150)
        assert await lock.acquire_lock("leader", "owner-a", 60_000), "rule: the owner can renew its lock"

        async def past_first_ttl() -> bool:
            return now_ms() > first_ttl_over

        await wait_until(past_first_ttl, message="the first ttl runs out")
        assert not await lock.acquire_lock("leader", "owner-b", 60_000), (
            "rule: renewing a lock replaces its ttl"
        )

    async def test_locks_are_per_namespace(self, storage: Storage) -> None:
        lock = require_leader_lock(storage)
        async with storage.namespace("other") as other_storage:
            other = require_leader_lock(other_storage)
            assert await lock.acquire_lock("leader", "owner-a", 60_000), "rule: a free lock can be acquired"
            assert await other.acquire_lock("leader", "owner-b", 60_000), (
                "rule: namespaces are isolated: a lock of one does not hold another's"
            )
            assert await other.release_lock("leader", "owner-b"), "rule: the owner releases its lock"
            assert not await lock.acquire_lock("leader", "owner-b", 60_000), (
                "rule: namespaces are isolated: releasing one's lock leaves another's"
            )
