"""OpenTelemetry on memory and Redis: one trace per job across attempts, and metrics that count exactly.

The SDK providers are given to the observer, not installed globally: other
tests in this process keep running with the API alone.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from jobqueue import Job, JobFailedError, JobState, MemoryStorage, Queue, Reaper, SerializationError, Storage
from jobqueue._otel import METRICS, OTelObserver
from jobqueue._telemetry import add_observer, default_observer
from jobqueue.storage import decode_envelope
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from tests.otel.otel_support import Sdk, span_record, wait_until


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    recorder = Sdk.new()
    yield recorder
    recorder.shutdown()


@pytest.fixture(
    params=[pytest.param("memory", marks=pytest.mark.memory), pytest.param("redis", marks=pytest.mark.redis)]
)
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[Storage]:
    """A fresh storage: memory, or a prefix of its own on the session's Redis."""
    if request.param == "memory":
        async with MemoryStorage() as memory:
            yield memory
        return
    from jobqueue_redis import RedisStorage

    url: str = request.getfixturevalue("redis_url")
    async with RedisStorage(url, prefix=f"otel{uuid.uuid4().hex[:8]}") as redis:
        yield redis


def instrumented(storage: Storage, sdk: Sdk, name: str, **options: Any) -> Queue[Any, Any]:
    queue: Queue[Any, Any] = Queue(storage, name=name, instrument=False, retry_backoff=0.01, **options)
    add_observer(queue, sdk.observer())
    return queue


async def flaky(job: Job[dict[str, Any]]) -> str:
    """Fails the first ``fail`` attempts, then returns ``ok``."""
    if job.attempt <= job.payload.get("fail", 0):
        raise ValueError(f"attempt {job.attempt} fails")
    return "ok"


async def test_every_attempt_continues_the_producers_trace(storage: Storage, sdk: Sdk) -> None:
    queue = instrumented(storage, sdk, "traces")
    queue.execute(flaky)
    request = sdk.tracer_provider.get_tracer("app").start_span("POST /signup")
    async with queue:
        with trace.use_span(request, end_on_exit=True):
            assert await queue.enqueue_and_wait("job-1", {"fail": 1}, timeout=30) == "ok"
    send = [span_record(s) for s in sdk.spans("send traces")]
    process = [span_record(s) for s in sdk.spans("process traces")]
    assert len(send) == 1 and len(process) == 2
    (sent,) = send
    root = span_record(sdk.spans("POST /signup")[0])
    assert sent["parent_id"] == root["span_id"] and sent["kind"] == "PRODUCER"
    assert sent["attributes"] == {
        "messaging.system": "jobqueue",
        "messaging.destination.name": "traces",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.message.id": "job-1",
    }
    for span in process:
        assert span["trace_id"] == root["trace_id"]
        assert span["parent_id"] == sent["span_id"], "each attempt is a child of the send span"
        assert span["kind"] == "CONSUMER"
    first, second = sorted(process, key=lambda s: s["attributes"]["jobqueue.job.attempt"])
    assert first["attributes"]["jobqueue.job.outcome"] == "retried"
    assert first["attributes"]["error.type"] == "ValueError"
    assert second["attributes"]["jobqueue.job.outcome"] == "completed"
    assert "error.type" not in second["attributes"]
    assert second["attributes"]["messaging.message.id"] == "job-1"


async def test_the_handler_runs_inside_the_process_span(storage: Storage, sdk: Sdk) -> None:
    queue = instrumented(storage, sdk, "nested")
    tracer = sdk.tracer_provider.get_tracer("app")

    @queue.execute
    async def handler(job: Job[int]) -> int:
        with tracer.start_as_current_span("inside"):
            return job.payload

    async with queue:
        await queue.enqueue_and_wait("n", 1, timeout=30)
    (inside,) = [span_record(s) for s in sdk.spans("inside")]
    (process,) = [span_record(s) for s in sdk.spans("process nested")]
    assert inside["parent_id"] == process["span_id"]


async def test_scheduled_and_batched_jobs_carry_their_context(storage: Storage, sdk: Sdk) -> None:
    queue = instrumented(storage, sdk, "later", concurrency=4)
    queue.execute(flaky)
    async with queue:
        await queue.enqueue("delayed", {}, delay=0.2)
        await queue.enqueue_many([("b1", {}), ("b2", {})])
        for job_id in ("delayed", "b1", "b2"):
            assert await queue.wait(job_id, timeout=30) == "ok"
    sends = {s.context.span_id: span_record(s) for s in sdk.spans("send later")}
    batch = [s for s in sends.values() if "messaging.batch.message_count" in s["attributes"]]
    assert len(batch) == 1 and batch[0]["attributes"]["messaging.batch.message_count"] == 2
    parents = {s["attributes"]["messaging.message.id"]: s["parent_id"] for s in map(span_record, sdk.spans())
               if s["name"] == "process later"}  # fmt: skip
    assert parents["b1"] == parents["b2"] == batch[0]["span_id"]
    delayed = next(s for s in sends.values() if s["attributes"].get("messaging.message.id") == "delayed")
    assert parents["delayed"] == delayed["span_id"]


async def test_concurrent_enqueues_each_carry_their_own_context(storage: Storage, sdk: Sdk) -> None:
    queue = instrumented(storage, sdk, "many", concurrency=10)
    queue.execute(flaky)
    tracer = sdk.tracer_provider.get_tracer("app")

    async def request(i: int) -> None:
        with tracer.start_as_current_span(f"request {i}"):
            assert (await queue.enqueue(f"c{i}", {})).status == "queued"

    async with queue:
        await asyncio.gather(*(request(i) for i in range(20)))  # on Redis they share storage calls
        for i in range(20):
            assert await queue.wait(f"c{i}", timeout=30) == "ok"
    records = [span_record(s) for s in sdk.spans()]
    requests = {r["name"]: r for r in records if r["name"].startswith("request ")}
    sends = {r["attributes"]["messaging.message.id"]: r for r in records if r["name"] == "send many"}
    processes = {r["attributes"]["messaging.message.id"]: r for r in records if r["name"] == "process many"}
    for i in range(20):
        assert sends[f"c{i}"]["parent_id"] == requests[f"request {i}"]["span_id"], "one send span per call"
        assert processes[f"c{i}"]["parent_id"] == sends[f"c{i}"]["span_id"], (
            "each job carries its own context"
        )


async def test_a_job_recovered_after_a_crash_continues_its_trace(storage: Storage, sdk: Sdk) -> None:
    producer = instrumented(storage, sdk, "crash")
    async with producer:
        await producer.enqueue("survivor", {})
    space = storage.namespace("crash")
    claims = await space.dequeue("dead-worker", lease_ms=50, timeout_ms=0)  # a worker that dies holding it
    assert [c.id for c in claims] == ["survivor"]
    reaper = Reaper(space, leader_election=None, instrument=False)
    add_observer(reaper, sdk.observer())
    async with reaper:
        await wait_until(lambda: sdk.total(METRICS["stalled"], "crash") == 1, timeout=30)
    worker = instrumented(storage, sdk, "crash")
    worker.execute(flaky)
    async with worker:
        assert await worker.wait("survivor", timeout=30) == "ok"
    (sent,) = [span_record(s) for s in sdk.spans("send crash")]
    (process,) = [span_record(s) for s in sdk.spans("process crash")]
    assert process["parent_id"] == sent["span_id"] and process["trace_id"] == sent["trace_id"]
    assert process["attributes"]["jobqueue.job.attempt"] == 2


async def test_metrics_count_a_run_of_known_outcomes_exactly(storage: Storage, sdk: Sdk) -> None:
    queue = instrumented(storage, sdk, "counted", concurrency=5, max_attempts=2)
    queue.execute(flaky)
    plan = (
        {f"ok-{i}": 0 for i in range(10)}
        | {f"late-{i}": 1 for i in range(2)}
        | {f"bad-{i}": 2 for i in range(3)}
    )
    async with queue:
        await queue.enqueue_many([(job_id, {"fail": fail}) for job_id, fail in plan.items() if fail == 0])
        for job_id, fail in plan.items():
            if fail:
                await queue.enqueue(job_id, {"fail": fail})
        assert (await queue.enqueue("ok-0", {})).status in ("duplicate", "completed")  # not counted
        for job_id, fail in plan.items():
            if fail == 2:
                with pytest.raises(JobFailedError):
                    await queue.wait(job_id, timeout=30)
            else:
                assert await queue.wait(job_id, timeout=30) == "ok"
        await wait_until(lambda: sdk.total(METRICS["duration"], "counted") == 20, timeout=30)
        depth = await _depth(sdk, "counted", {JobState.COMPLETED: 12, JobState.FAILED: 3})
    assert sdk.total(METRICS["enqueued"], "counted") == 15
    assert sdk.total(METRICS["completed"], "counted") == 12
    assert sdk.total(METRICS["failed"], "counted") == 3
    assert sdk.total(METRICS["retried"], "counted") == 5  # 2 late jobs once, 3 bad jobs once
    assert sdk.total(METRICS["latency"], "counted") == 15  # one per job that reached an end
    assert sdk.total(METRICS["duration"], "counted") == 20  # one per attempt: 10 + 2*2 + 3*2
    (failed,) = sdk.points(METRICS["failed"], "counted")
    assert failed.attributes["error.type"] == "ValueError"
    outcomes = {
        p.attributes["jobqueue.job.outcome"]: p.count for p in sdk.points(METRICS["duration"], "counted")
    }
    assert outcomes == {"completed": 12, "retried": 5, "failed": 3}
    assert depth[JobState.QUEUED.value] == depth[JobState.PROCESSING.value] == 0


async def _depth(sdk: Sdk, queue: str, expected: dict[JobState, int]) -> dict[str, int]:
    """The depth gauge once it shows ``expected`` (a collection on the loop's thread refreshes it for the next)."""
    found: dict[str, int] = {}

    def shows_expected() -> bool:
        found.clear()
        found.update(
            {p.attributes["jobqueue.job.state"]: p.value for p in sdk.points(METRICS["depth"], queue)}
        )
        return all(found.get(state.value) == count for state, count in expected.items())

    await wait_until(shows_expected, timeout=30)
    return found


async def test_a_stopped_queue_leaves_the_depth_gauge(storage: Storage, sdk: Sdk) -> None:
    queue = instrumented(storage, sdk, "gone")
    async with queue:
        await queue.enqueue("x", 1)
        await _depth(sdk, "gone", {JobState.QUEUED: 1})
    assert sdk.points(METRICS["depth"], "gone") == []


async def test_on_by_default_and_off_per_queue(storage: Storage) -> None:
    assert isinstance(default_observer(), OTelObserver)
    assert Queue(storage).config.observer is default_observer()
    assert Queue(storage, instrument=False).config.observer is None
    assert Reaper(storage, leader_election=None, instrument=False)._observer is None
    with pytest.raises(TypeError, match="instrument"):
        Queue(storage, instrument="yes")  # type: ignore[arg-type]


async def test_without_an_sdk_envelopes_carry_only_an_incoming_context(storage: Storage) -> None:
    queue: Queue[int, int] = Queue(storage, name="plain")  # the API alone: no provider is set in this process
    incoming = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    async with queue:
        await queue.enqueue("no-trace", 1)
        with trace.use_span(NonRecordingSpan(incoming)):
            await queue.enqueue("in-trace", 2)
    space = storage.namespace("plain")
    quiet, traced = await space.get_many(["no-trace", "in-trace"])
    assert quiet is not None and decode_envelope(quiet.message).headers == {}
    assert traced is not None
    headers = decode_envelope(traced.message).headers
    assert headers["traceparent"] == f"00-{0x1234:032x}-{0x5678:016x}-01"


async def test_a_queue_running_an_sdk_after_it_was_built_picks_it_up(storage: Storage, sdk: Sdk) -> None:
    observer = OTelObserver()  # global providers: none yet
    assert observer.send("q", "a", 1).headers is None
    observer._tracer_provider = sdk.tracer_provider  # as if the application set one up later
    observer._recheck_at = 0.0  # skip the one-second wait before the next look-up
    assert observer.send("q", "a", 1).headers is not None


async def test_a_failing_enqueue_ends_its_span_with_the_error(storage: Storage, sdk: Sdk) -> None:
    queue = instrumented(storage, sdk, "broken")
    async with queue:
        with pytest.raises(SerializationError):
            await queue.enqueue("x", object())  # the JSON serde refuses it
    (span,) = sdk.spans("send broken")
    assert span.status.status_code.name == "ERROR"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "jobqueue.SerializationError"
    assert sdk.total(METRICS["enqueued"], "broken") == 0


async def test_the_depth_gauge_waits_for_counts_when_read_from_another_thread(
    storage: Storage, sdk: Sdk
) -> None:
    queue = instrumented(storage, sdk, "threaded")
    async with queue:
        await queue.enqueue_many([("a", 1), ("b", 2)])
        points = await asyncio.to_thread(sdk.points, METRICS["depth"], "threaded")
    assert {p.attributes["jobqueue.job.state"]: p.value for p in points}[JobState.QUEUED.value] == 2


def test_without_opentelemetry_nothing_is_imported_and_jobs_run() -> None:
    code = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # as if the [otel] extra were not installed
from jobqueue import MemoryStorage, Queue

async def main():
    queue = Queue(MemoryStorage())
    assert queue.config.observer is None
    queue.execute(lambda job: job.payload + 1)
    async with queue:
        print(await queue.enqueue_and_wait("x", 1, timeout=30))

asyncio.run(main())
assert not any(name.startswith("opentelemetry.") for name in sys.modules)
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "2"
