"""Storage suite, monitoring group: counts, paged listing, purge, retry_failed, namespaces."""

from __future__ import annotations

from jobqueue import JobState
from jobqueue.storage import JobRecord, Monitoring, Storage, now_ms

from ._helpers import LEASE_MS, LONG_TTL_MS, claim, require_monitoring, wait_until

__all__ = ["StorageMonitoringTests"]


async def _all_pages(
    storage: Monitoring, *, limit: int, state: JobState | None = None, prefix: str = ""
) -> list[list[JobRecord]]:
    pages: list[list[JobRecord]] = []
    cursor: str | None = None
    while True:
        page = await storage.list_jobs(state=state, prefix=prefix, cursor=cursor, limit=limit)
        pages.append(page.records)
        if page.next_cursor is None:
            return pages
        assert len(pages) < 1000, "rule: list_jobs paging ends"
        cursor = page.next_cursor


class StorageMonitoringTests:
    """``counts``, ``list_jobs``, ``purge``, ``retry_failed``, ``list_namespaces``: the ``Monitoring`` capability."""

    async def test_counts_every_state_on_an_empty_storage(self, storage: Storage) -> None:
        monitoring = require_monitoring(storage)
        assert await monitoring.counts() == dict.fromkeys(JobState, 0), (
            "rule: counts has every state, zeros included"
        )

    async def test_counts_per_state(self, storage: Storage) -> None:
        monitoring = require_monitoring(storage)
        for job_id in ("completed", "failed", "failing", "processing"):
            await storage.enqueue(job_id, b"m")
        await storage.dequeue("worker-1", lease_ms=LEASE_MS, timeout_ms=0, limit=4)
        await storage.complete("completed", "worker-1", b"r", LONG_TTL_MS)
        await storage.fail("failed", "worker-1", b"e", LONG_TTL_MS)
        await storage.retry("failing", "worker-1", b"e", 600_000)
        await storage.enqueue("queued-1", b"m")
        await storage.enqueue("queued-2", b"m")
        expected = {
            JobState.QUEUED: 2,
            JobState.PROCESSING: 1,
            JobState.FAILING: 1,
            JobState.COMPLETED: 1,
            JobState.FAILED: 1,
        }
        assert await monitoring.counts() == expected, "rule: counts reports live jobs per state"

    async def test_list_jobs_of_an_empty_storage(self, storage: Storage) -> None:
        monitoring = require_monitoring(storage)
        page = await monitoring.list_jobs()
        assert page.records == [] and page.next_cursor is None, "rule: list_jobs of nothing is one empty page"

    async def test_list_jobs_pages_through_every_job_newest_first(self, storage: Storage) -> None:
        monitoring = require_monitoring(storage)
        ids = [f"job-{i:03d}" for i in range(120)]
        for job_id in ids:
            await storage.enqueue(job_id, b"m")
        pages = await _all_pages(monitoring, limit=50)
        assert [len(page) for page in pages] == [50, 50, 20], (
            "rule: list_jobs pages hold at most limit records"
        )
        listed = [record.id for page in pages for record in page]
        assert sorted(listed) == ids, "rule: paging through list_jobs lists every job exactly once"
        created = [record.created_at for page in pages for record in page]
        assert created == sorted(created, reverse=True), "rule: list_jobs lists newest first"

    async def test_list_jobs_puts_the_newest_job_first(self, storage: Storage) -> None:
        monitoring = require_monitoring(storage)
        await storage.enqueue("old", b"m")
        old = await storage.get("old")
        assert old is not None, "rule: an accepted job is stored"

        async def later() -> bool:
            return now_ms() > old.created_at + 2

        await wait_until(later, message="the clock moves on")
        await storage.enqueue("new", b"m")
        page = await monitoring.list_jobs()
        assert [r.id for r in page.records] == ["new", "old"], "rule: list_jobs lists newest first"

    async def test_list_jobs_filters_by_prefix_and_state(self, storage: Storage) -> None:
        monitoring = require_monitoring(storage)
        for i in range(30):
            await storage.enqueue(f"alpha-{i:02d}", b"m")
            await storage.enqueue(f"beta-{i:02d}", b"m")
        await storage.dequeue("worker-1", lease_ms=LEASE_MS, timeout_ms=0, limit=4)  # alpha-00, beta-00, ...
        alpha = [r for page in await _all_pages(monitoring, limit=7, prefix="alpha-") for r in page]
        assert sorted(r.id for r in alpha) == [f"alpha-{i:02d}" for i in range(30)], (
            "rule: list_jobs(prefix) pages through exactly the jobs whose id starts with prefix"
        )
        running = [
            r for page in await _all_pages(monitoring, limit=3, state=JobState.PROCESSING) for r in page
        ]
        assert sorted(r.id for r in running) == ["alpha-00", "alpha-01", "beta-00", "beta-01"], (
            "rule: list_jobs(state) lists exactly the jobs in that state"
        )
        both = await monitoring.list_jobs(state=JobState.QUEUED, prefix="beta-0", limit=100)
        assert sorted(r.id for r in both.records) == [f"beta-{i:02d}" for i in range(2, 10)], (
            "rule: list_jobs combines the state and prefix filters"
        )

    async def test_purge_deletes_jobs_in_the_given_terminal_states(self, storage: Storage) -> None:
        monitoring = require_monitoring(storage)
        for job_id in ("done-1", "done-2", "failed-1"):
            await claim(storage, job_id, "worker-1")
        await storage.complete("done-1", "worker-1", b"r", LONG_TTL_MS)
        await storage.complete("done-2", "worker-1", b"r", LONG_TTL_MS)
        await storage.fail("failed-1", "worker-1", b"e", LONG_TTL_MS)
        await storage.enqueue("queued", b"m")
        assert await monitoring.purge([JobState.COMPLETED]) == 2, "rule: purge returns how many it deleted"
        assert await storage.get("done-1") is None, "rule: purge deletes jobs in the given states"
        assert await storage.get("failed-1") is not None, "rule: purge leaves other states alone"
        assert await monitoring.purge([JobState.COMPLETED, JobState.FAILED]) == 1, (
            "rule: purge counts deletions"
        )
        assert await storage.get("queued") is not None, "rule: purge never deletes live work"
        assert (await storage.enqueue("done-1", b"m")).accepted, "rule: purge frees the job ids"

    async def test_retry_failed_queues_a_failed_job_again(self, storage: Storage) -> None:
        monitoring = require_monitoring(storage)
        await claim(storage, "job-1", "worker-1")
        await storage.fail("job-1", "worker-1", b"e", LONG_TTL_MS)
        assert await monitoring.retry_failed("job-1"), "rule: retry_failed of a failed job returns True"
        record = await storage.get("job-1")
        assert record is not None and record.state == JobState.QUEUED, "rule: retry_failed queues the job"
        assert record.attempts == 0, "rule: retry_failed resets attempts"
        assert record.worker_id is None and record.error is None, "rule: a requeued failed job starts afresh"
        assert record.expires_at is None, "rule: a queued job does not expire"
        claims = await storage.dequeue("worker-1", lease_ms=LEASE_MS, timeout_ms=0)
        assert [(c.id, c.attempt) for c in claims] == [("job-1", 1)], "rule: a retried failed job runs again"
        assert not await monitoring.retry_failed("job-1"), (
            "rule: retry_failed of a processing job returns False"
        )
        assert not await monitoring.retry_failed("missing"), (
            "rule: retry_failed of a missing job returns False"
        )

    async def test_list_namespaces(self, storage: Storage) -> None:
        monitoring = require_monitoring(storage)
        await storage.enqueue("job-1", b"m")
        async with storage.namespace("ns-jobs") as jobs, storage.namespace("ns-workers") as workers:
            await jobs.enqueue("job-1", b"m")
            await workers.register_worker("worker-1", 60_000)
            storage.namespace("ns-untouched")
            names = await monitoring.list_namespaces()
        assert {storage.name, "ns-jobs", "ns-workers"} <= set(names), (
            "rule: list_namespaces lists the namespaces that hold jobs or workers"
        )
        assert "ns-untouched" not in names, "rule: list_namespaces omits namespaces that hold nothing"
