"""Storage suite, workers group: registration, heartbeats, lapsed workers."""

from __future__ import annotations

import pytest
from jobqueue import JobState
from jobqueue.storage import Storage, WorkerRecord, now_ms, rules

from ._helpers import CLOCK_SKEW_MS, LONG_TTL_MS, claim, monitoring_of, require_monitoring, wait_until

__all__ = ["StorageWorkerTests"]

LAPSE_SLACK_MS = 1_000
"""How long past ``ttl_ms`` a lapsed registration may still be listed (clock skew, expiry cycles)."""


async def _worker(storage: Storage, worker_id: str) -> WorkerRecord | None:
    workers = await require_monitoring(storage).list_workers()
    return next((w for w in workers if w.id == worker_id), None)


class StorageWorkerTests:
    """``register_worker``, ``unregister_worker``, ``list_workers`` (registrations are seen through ``Monitoring``)."""

    async def test_registered_worker_is_listed(self, storage: Storage) -> None:
        assert await require_monitoring(storage).list_workers() == [], (
            "rule: a fresh storage lists no workers"
        )
        before = now_ms()
        await storage.register_worker("worker-1", 60_000)
        worker = await _worker(storage, "worker-1")
        assert worker is not None, "rule: a registered worker is listed"
        assert abs(worker.last_seen - before) < CLOCK_SKEW_MS, "rule: last_seen is the heartbeat time"
        assert abs(worker.expires_at - before - 60_000) < CLOCK_SKEW_MS, "rule: expires_at = now + ttl_ms"
        assert worker.jobs == (), "rule: a worker holding nothing lists no jobs"

    async def test_heartbeat_refreshes_the_registration(self, storage: Storage) -> None:
        await storage.register_worker("worker-1", 1_000)
        await storage.register_worker("worker-1", 60_000)
        worker = await _worker(storage, "worker-1")
        assert worker is not None and worker.expires_at - now_ms() > 30_000, (
            "rule: registering again refreshes the heartbeat with the new ttl"
        )
        workers = await require_monitoring(storage).list_workers()
        assert [w.id for w in workers] == ["worker-1"], "rule: a worker is listed once"

    async def test_the_info_registered_last_is_listed(self, storage: Storage) -> None:
        info = bytes(range(256)) * 4  # any bytes, NUL and invalid UTF-8 included
        await storage.register_worker("worker-1", 60_000, info)
        await storage.register_worker("worker-2", 60_000)
        worker = await _worker(storage, "worker-1")
        assert worker is not None and worker.info == info, "rule: the info registered is listed as given"
        other = await _worker(storage, "worker-2")
        assert other is not None and other.info == b"", "rule: a worker registered without info lists b''"
        await storage.heartbeat("worker-1", ttl_ms=60_000, info=b"second")
        worker = await _worker(storage, "worker-1")
        assert worker is not None and worker.info == b"second", "rule: each registration replaces the info"
        await storage.heartbeat("worker-1", ttl_ms=None, info=b"ignored")
        worker = await _worker(storage, "worker-1")
        assert worker is not None and worker.info == b"second", (
            "rule: a heartbeat that only renews leases (ttl_ms None) leaves the info alone"
        )
        await storage.register_worker("worker-1", 60_000, b"x" * rules.MAX_WORKER_INFO)
        worker = await _worker(storage, "worker-1")
        assert worker is not None and len(worker.info) == rules.MAX_WORKER_INFO, (
            "rule: info up to rules.MAX_WORKER_INFO bytes is stored whole"
        )

    async def test_bad_info_is_refused_before_anything_is_written(self, storage: Storage) -> None:
        with pytest.raises(TypeError, match="info must be bytes"):
            await storage.register_worker("worker-1", 60_000, "text")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="info must be at most"):
            await storage.register_worker("worker-1", 60_000, b"x" * (rules.MAX_WORKER_INFO + 1))
        assert await _worker(storage, "worker-1") is None, "rule: a refused registration writes nothing"

    async def test_the_info_goes_with_the_registration(self, storage: Storage) -> None:
        await storage.register_worker("worker-1", 60_000, b"schedules")
        await storage.unregister_worker("worker-1")
        await storage.register_worker("worker-1", 60_000)
        worker = await _worker(storage, "worker-1")
        assert worker is not None and worker.info == b"", "rule: unregistering drops the info"

    async def test_worker_lapses_after_its_ttl(self, storage: Storage) -> None:
        await storage.register_worker("worker-1", 150)
        await storage.register_worker("worker-2", 60_000)

        async def lapsed() -> bool:
            return await _worker(storage, "worker-1") is None

        await wait_until(lapsed, message="rule: a worker that stops heartbeating lapses after its ttl")
        assert await _worker(storage, "worker-2") is not None, "rule: a live worker stays listed"

    async def test_a_registration_disappears_within_its_ttl_without_anyone_listing(
        self, storage: Storage
    ) -> None:
        monitoring = require_monitoring(storage)
        await storage.register_worker("worker-1", 300)
        await storage.heartbeat("worker-1", ttl_ms=300)  # the last heartbeat: lapses 300 ms from now
        last_heartbeat = now_ms()
        await storage.register_worker("worker-2", 60_000)

        async def past_ttl_and_slack() -> bool:  # only the clock: nobody lists workers meanwhile
            return now_ms() >= last_heartbeat + 300 + LAPSE_SLACK_MS

        await wait_until(past_ttl_and_slack, message="the clock moves past ttl_ms and the slack")
        listed = [w.id for w in await monitoring.list_workers()]
        assert listed == ["worker-2"], (
            f"rule: a worker's registration disappears at most ttl_ms (+{LAPSE_SLACK_MS} ms) after its last "
            f"heartbeat, without anyone listing workers (listed {listed})"
        )

    async def test_renewing_leases_alone_does_not_register(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        assert await storage.heartbeat("worker-1", ttl_ms=None, job_ids=["job-1"], lease_ms=60_000) == {}, (
            "rule: heartbeat renews the worker's leases"
        )
        worker = await _worker(storage, "worker-1")
        assert worker is None or worker.expires_at <= now_ms(), (
            "rule: heartbeat with ttl_ms=None renews leases without registering the worker"
        )

    async def test_lapsed_worker_that_holds_jobs_stays_listed(self, storage: Storage) -> None:
        await storage.register_worker("worker-1", 150)
        await claim(storage, "job-1", "worker-1")
        registered = await _worker(storage, "worker-1")
        assert registered is not None, "rule: a registered worker is listed"

        async def past_ttl() -> bool:
            return now_ms() > registered.expires_at + 50

        await wait_until(past_ttl, message="the worker's ttl runs out")
        worker = await _worker(storage, "worker-1")
        assert worker is not None, "rule: list_workers includes lapsed workers that still hold jobs"
        assert worker.expires_at <= now_ms(), "rule: a lapsed worker has expires_at in the past"
        assert worker.jobs == ("job-1",), "rule: a lapsed worker lists the jobs it holds"

    async def test_worker_lists_the_jobs_it_holds(self, storage: Storage) -> None:
        await storage.register_worker("worker-1", 60_000)
        await claim(storage, "job-a", "worker-1")
        await claim(storage, "job-b", "worker-1")
        worker = await _worker(storage, "worker-1")
        assert worker is not None and sorted(worker.jobs) == ["job-a", "job-b"], (
            "rule: a worker lists the jobs it holds"
        )
        await storage.complete("job-a", "worker-1", b"r", LONG_TTL_MS)
        worker = await _worker(storage, "worker-1")
        assert worker is not None and worker.jobs == ("job-b",), "rule: a finished job leaves its worker"

    async def test_unregister_removes_the_worker_but_not_its_jobs(self, storage: Storage) -> None:
        await storage.register_worker("idle", 60_000)
        await storage.unregister_worker("idle")
        if monitoring_of(storage) is not None:
            assert await _worker(storage, "idle") is None, "rule: unregister removes a worker holding nothing"
        await storage.register_worker("busy", 60_000)
        await claim(storage, "job-1", "busy", lease_ms=100)
        await storage.unregister_worker("busy")
        record = await storage.get("job-1")
        assert record is not None and record.state == JobState.PROCESSING, (
            "rule: unregister leaves jobs alone"
        )

        async def recovered() -> bool:
            return [s.id for s in (await storage.recover_stalled()).stalled] == ["job-1"]

        await wait_until(recovered, message="rule: jobs of an unregistered worker stay recoverable")
