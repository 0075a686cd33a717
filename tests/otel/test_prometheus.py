"""The Prometheus endpoint, scraped over HTTP while jobs run: its counters match what ran."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from jobqueue import Job, JobFailedError, JobState, MemoryStorage, Queue, Reaper, StorageError
from jobqueue._prometheus import MetricsServer, PrometheusObserver, StorageCollector, new_registry, serve
from jobqueue._telemetry import add_observer
from jobqueue.storage import NewJob
from prometheus_client.parser import text_string_to_metric_families

from tests.otel.otel_support import wait_for_true

pytestmark = pytest.mark.memory


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint, by name and sorted labels."""
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def storage() -> AsyncIterator[MemoryStorage]:
    async with MemoryStorage() as memory:
        yield memory


async def test_a_scrape_while_jobs_run_matches_what_ran(storage: MemoryStorage) -> None:
    registry = new_registry()
    observer = PrometheusObserver(registry)
    queue: Queue[dict[str, Any], str] = Queue(
        storage, name="work", concurrency=3, max_attempts=2, retry_backoff=0.01, instrument=False
    )
    add_observer(queue, observer)
    release = asyncio.Event()

    @queue.execute
    async def handle(job: Job[dict[str, Any]]) -> str:
        if job.payload.get("fail"):
            raise ValueError("boom")
        if job.payload.get("hold"):
            await release.wait()
        return "ok"

    registry.register(StorageCollector(storage, asyncio.get_running_loop()))
    server: MetricsServer = serve(registry, "127.0.0.1", 0)
    try:
        async with queue:
            await queue.enqueue_many([(f"ok-{i}", {}) for i in range(5)])
            await queue.enqueue_many([(f"bad-{i}", {"fail": True}) for i in range(2)])
            for i in range(5):
                assert await queue.wait(f"ok-{i}", timeout=30) == "ok"
            for i in range(2):
                with pytest.raises(JobFailedError):
                    await queue.wait(f"bad-{i}", timeout=30)
            await queue.enqueue_many([(f"held-{i}", {"hold": True}) for i in range(3)])
            other: Queue[int, int] = Queue(storage, name="other", instrument=False)
            async with other:
                await other.enqueue_many([(f"o-{i}", i) for i in range(4)])

            samples: dict[Any, float] = {}

            async def three_running() -> bool:
                samples.clear()
                samples.update(await asyncio.to_thread(scrape, server.url))
                return value(samples, "jobqueue_jobs", queue="work", state="processing") == 3

            await wait_for_true(three_running)
            assert value(samples, "jobqueue_storage_up") == 1
            assert value(samples, "jobqueue_jobs_enqueued_total", queue="work") == 10
            assert value(samples, "jobqueue_jobs_completed_total", queue="work") == 5
            assert value(samples, "jobqueue_jobs_failed_total", queue="work", error_type="ValueError") == 2
            assert value(samples, "jobqueue_jobs_retried_total", queue="work", error_type="ValueError") == 2
            assert value(samples, "jobqueue_jobs", queue="work", state="completed") == 5
            assert value(samples, "jobqueue_jobs", queue="work", state="failed") == 2
            assert value(samples, "jobqueue_jobs", queue="other", state="queued") == 4, "every namespace"
            assert value(samples, "jobqueue_workers_alive", queue="work") == 1
            assert value(samples, "jobqueue_workers_alive", queue="other") == 0
            durations = "jobqueue_process_duration_seconds_count"
            assert value(samples, durations, queue="work", outcome="completed") == 5
            assert value(samples, durations, queue="work", outcome="retried") == 2
            assert value(samples, durations, queue="work", outcome="failed") == 2
            assert value(samples, "jobqueue_job_latency_seconds_count", queue="work") == 7

            release.set()
            for i in range(3):
                assert await queue.wait(f"held-{i}", timeout=30) == "ok"
            after = await asyncio.to_thread(scrape, server.url)
            assert value(after, "jobqueue_jobs_completed_total", queue="work") == 8
            assert value(after, "jobqueue_jobs", queue="work", state="processing") == 0
            assert value(after, "jobqueue_job_latency_seconds_count", queue="work") == 10
            assert value(after, "process_cpu_seconds_total") > 0, "the usual process metrics are there too"
    finally:
        server.close()


async def test_stalled_recoveries_are_counted(storage: MemoryStorage) -> None:
    registry = new_registry()
    observer = PrometheusObserver(registry)
    space = storage.namespace("stalls")
    reaper = Reaper(space, leader_election=None, instrument=False)
    add_observer(reaper, observer)
    await space.enqueue_many([NewJob("a", b"x"), NewJob("b", b"x")])
    await space.dequeue("dead", lease_ms=50, timeout_ms=0, limit=2)
    server = serve(registry, "127.0.0.1", 0)
    try:
        async with reaper:

            async def counted() -> bool:
                samples = await asyncio.to_thread(scrape, server.url)
                return value(samples, "jobqueue_jobs_stalled_total", queue="stalls") == 2

            await wait_for_true(counted)
    finally:
        server.close()


class CountsFail(MemoryStorage):
    """A memory storage whose counts fail, as a storage that is down."""

    async def _counts(self) -> Mapping[JobState, int]:
        raise StorageError("the storage is down")


async def test_an_unreadable_storage_shows_as_down_and_the_endpoint_stays_up() -> None:
    registry = new_registry()
    async with CountsFail() as storage:
        registry.register(StorageCollector(storage, asyncio.get_running_loop()))
        server = serve(registry, "127.0.0.1", 0)
        try:
            first = await asyncio.to_thread(scrape, server.url)
            second = await asyncio.to_thread(scrape, server.url)
        finally:
            server.close()
    assert value(first, "jobqueue_storage_up") == value(second, "jobqueue_storage_up") == 0
    assert not any(name == "jobqueue_jobs" for name, _ in first)
