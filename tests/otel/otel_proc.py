"""A producer or a worker process with the OpenTelemetry SDK installed globally, for test_otel_processes.

    python -m tests.otel.otel_proc produce URL QUEUE OUT SET
    python -m tests.otel.otel_proc work URL QUEUE OUT SET

SET ``basic``: the producer enqueues, inside a ``request`` span, ``plain``,
``retried`` (fails its first attempt) and ``scheduled`` (due 0.3 s later).
SET ``crash``: it enqueues ``victim``, whose first attempt hangs until the
worker is killed; the worker runs a reaper and a 1 s lease. The worker prints
``ready`` once started and ``processing ID ATTEMPT`` as attempts start, and
runs until the set's jobs are done. Each process writes its finished spans to
OUT as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from jobqueue import Job, LeaderElection, Queue, Reaper, storage_from_url
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.otel.otel_support import span_record

SETS: dict[str, dict[str, dict[str, Any]]] = {
    "basic": {"plain": {}, "retried": {"fail": 1}, "scheduled": {"delay": 0.3}},
    "crash": {"victim": {"hang": 1}},
}


async def handle(job: Job[dict[str, Any]]) -> str:
    if job.attempt <= job.payload.get("fail", 0):
        raise RuntimeError("first attempt fails")
    if job.attempt <= job.payload.get("hang", 0):
        await asyncio.sleep(3600)  # until the test kills this process
    return "ok"


async def produce(queue: Queue[Any, Any], jobs: dict[str, dict[str, Any]]) -> None:
    with trace.get_tracer("app").start_as_current_span("request"):
        async with queue:
            for job_id, payload in jobs.items():
                await queue.enqueue(job_id, payload, delay=payload.get("delay", 0))


async def work(queue: Queue[Any, Any], jobs: dict[str, dict[str, Any]], reaper: Reaper | None) -> None:
    done = asyncio.Event()
    finished: set[str] = set()

    def completed(job_id: str, _result: object) -> None:
        finished.add(job_id)
        if finished >= set(jobs):
            done.set()

    queue.on("processing", lambda job_id, attempt: print("processing", job_id, attempt, flush=True))
    queue.on("completed", completed)
    queue.execute(handle)
    async with queue:
        if reaper is not None:
            await reaper.start()
        print("ready", flush=True)
        await asyncio.wait_for(done.wait(), 120)
        if reaper is not None:
            await reaper.stop()


def main() -> None:
    role, url, name, out, job_set = sys.argv[1:6]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    storage = storage_from_url(url)
    lease = 1.0 if job_set == "crash" else 30.0
    queue: Queue[Any, Any] = Queue(
        storage, name=name, retry_backoff=0.05, block_timeout=0.5, visibility_timeout=lease
    )
    jobs = SETS[job_set]
    if role == "produce":
        asyncio.run(produce(queue, jobs))
    else:
        election = LeaderElection(lock_ttl=2.0, renew_interval=0.5, retry_interval=0.5)
        reaper = Reaper(storage, name=name, leader_election=election) if job_set == "crash" else None
        asyncio.run(work(queue, jobs, reaper))
    with open(out, "w") as file:
        json.dump([span_record(span) for span in exporter.get_finished_spans()], file)


if __name__ == "__main__":
    main()
