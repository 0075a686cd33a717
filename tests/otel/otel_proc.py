"""A producer or a worker process with the OpenTelemetry SDK installed globally, for test_otel_processes.

    python -m tests.otel.otel_proc produce URL QUEUE OUT
    python -m tests.otel.otel_proc work URL QUEUE OUT

The producer enqueues, inside a ``request`` span: ``plain``, ``retried``
(fails its first attempt) and ``scheduled`` (due 0.3 s later). The worker
prints ``ready`` once started and runs until those three jobs are done. Each
writes its finished spans to OUT as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from jobqueue import Job, Queue, storage_from_url
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.otel.otel_support import span_record

JOBS = {"plain": {}, "retried": {"fail": 1}, "scheduled": {}}


async def handle(job: Job[dict[str, Any]]) -> str:
    if job.attempt <= job.payload.get("fail", 0):
        raise RuntimeError("first attempt fails")
    return "ok"


async def produce(queue: Queue[Any, Any]) -> None:
    with trace.get_tracer("app").start_as_current_span("request"):
        async with queue:
            await queue.enqueue("plain", JOBS["plain"])
            await queue.enqueue("retried", JOBS["retried"])
            await queue.enqueue("scheduled", JOBS["scheduled"], delay=0.3)


async def work(queue: Queue[Any, Any]) -> None:
    done = asyncio.Event()
    finished: set[str] = set()

    def completed(job_id: str, _result: object) -> None:
        finished.add(job_id)
        if finished >= set(JOBS):
            done.set()

    queue.on("completed", completed)
    queue.execute(handle)
    async with queue:
        print("ready", flush=True)
        await asyncio.wait_for(done.wait(), 120)


def main() -> None:
    role, url, name, out = sys.argv[1:5]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    queue: Queue[Any, Any] = Queue(storage_from_url(url), name=name, retry_backoff=0.05, block_timeout=0.5)
    asyncio.run(produce(queue) if role == "produce" else work(queue))
    with open(out, "w") as file:
        json.dump([span_record(span) for span in exporter.get_finished_spans()], file)


if __name__ == "__main__":
    main()
