"""Storage suite, cleanliness group: once every result has expired, nothing is left behind."""

from __future__ import annotations

from typing import cast

from jobqueue import JobState
from jobqueue.storage import Capability, Channel, LeaderLock, Storage, capabilities, now_ms

from ._helpers import LEASE_MS, claim, next_event, require_monitoring, wait_until

__all__ = ["StorageCleanlinessTests"]

SHORT_TTL_MS = 300
"""The TTL of every result, registration and lock the cleanliness test leaves behind."""


class StorageCleanlinessTests:
    """Physical cleanliness, checked through ``assert_namespace_empty`` (a backend may override it)."""

    async def assert_namespace_empty(self, storage: Storage) -> None:
        """Fail unless ``storage`` holds nothing for its namespace. Override it to look at the backend itself.

        Called once every result, registration and lock of the namespace has
        expired, with no other call in between. The default looks through
        ``Monitoring`` (nothing counted, listed, or named by
        ``list_namespaces``), which only proves that nothing is visible; an
        override checks what is stored: no key (Redis), no file (files), no
        row (SQL). It may call what a running deployment would call by
        itself (a reaper's ``recover_stalled`` pass) and may wait, within a
        few seconds, for a background sweep.
        """
        monitoring = require_monitoring(storage)
        assert await monitoring.counts() == dict.fromkeys(JobState, 0), (
            "rule: physical cleanliness: once every result has expired, no job is counted"
        )
        assert (await monitoring.list_jobs()).records == [], (
            "rule: physical cleanliness: once every result has expired, no job is listed"
        )
        assert await monitoring.list_workers() == [], (
            "rule: physical cleanliness: once every registration has lapsed, no worker is listed"
        )
        assert storage.name not in await monitoring.list_namespaces(), (
            "rule: physical cleanliness: an emptied namespace is not listed by list_namespaces"
        )

    async def test_nothing_is_left_once_every_result_has_expired(self, storage: Storage) -> None:
        async with storage.subscribe(Channel.EVENTS) as events:
            await claim(storage, "completed", "worker-1")
            await storage.set_progress("completed", "worker-1", b"50%")
            await storage.request_abort("completed")
            await storage.complete("completed", "worker-1", b"r", SHORT_TTL_MS)
            await claim(storage, "retried", "worker-1")
            await storage.retry("retried", "worker-1", b"e", 0)
            claims = await storage.dequeue("worker-2", lease_ms=LEASE_MS, timeout_ms=2_000)
            assert [c.id for c in claims] == ["retried"], "rule: a retry without delay is claimed again"
            await storage.fail("retried", "worker-2", b"e", SHORT_TTL_MS)
            await storage.enqueue("cancelled", b"m", delay_ms=60_000)
            await storage.cancel("cancelled")
            await storage.enqueue("aborted", b"m")
            await storage.request_abort("aborted")
            await next_event(events, message="rule: enqueue publishes enqueued")
        await storage.heartbeat("worker-1", ttl_ms=SHORT_TTL_MS)
        await storage.register_worker("worker-2", SHORT_TTL_MS)
        await storage.register_worker("gone", 60_000)
        await storage.unregister_worker("gone")
        if Capability.LEADER_LOCK in capabilities(storage):
            await cast(LeaderLock, storage).acquire_lock("leader", "owner-a", SHORT_TTL_MS)
        everything_lapses_at = now_ms() + SHORT_TTL_MS

        async def all_expired() -> bool:
            records = await storage.get_many(["completed", "retried", "cancelled", "aborted"])
            return records == [None] * 4 and now_ms() > everything_lapses_at

        await wait_until(all_expired, message="rule: every finished record expires after its ttl_ms")
        await self.assert_namespace_empty(storage)
