"""What OpenTelemetry instrumentation costs: a drain of memory jobs with and without it.

    uv run python tools/bench_otel.py --jobs 20000 --rounds 5 [--sdk]

Each round enqueues ``--jobs`` jobs into a fresh MemoryStorage (batches of
1,000), then times the drain by a worker (``--concurrency``), once with
``instrument=False`` and once with the default (``opentelemetry-api`` installed,
no SDK configured); rounds alternate the two. ``--sdk`` then installs the
SDK's tracer and meter providers, recording to memory, and runs as many rounds
again. The median of each variant is printed, as JSON on the last line. The CPU time of the
drain (``time.process_time``) is the figure to compare on a shared machine:
wall time there moves by tens of percent with the neighbours' load.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from typing import Any

from jobqueue import Job, MemoryStorage, Queue


async def noop(job: Job[int]) -> int:
    return job.payload


async def one_round(jobs: int, concurrency: int, variant: str) -> dict[str, float]:
    instrument = variant != "off"
    queue: Queue[int, int] = Queue(
        MemoryStorage(), name="bench", concurrency=concurrency, instrument=instrument
    )
    done = asyncio.Event()
    count = 0

    def completed(*_: Any) -> None:
        nonlocal count
        count += 1
        if count >= jobs:
            done.set()

    queue.on("completed", completed)
    await queue.storage.connect()
    started = time.perf_counter()
    for first in range(0, jobs, 1000):
        await queue.enqueue_many((f"j{i}", i) for i in range(first, min(first + 1000, jobs)))
    enqueued = time.perf_counter()
    queue.execute(noop)
    cpu = time.process_time()
    await queue.start()
    await done.wait()
    drained = time.perf_counter()
    cpu = time.process_time() - cpu
    await queue.stop(timeout=5.0)
    await queue.storage.disconnect()
    return {"enqueue": enqueued - started, "drain": drained - enqueued, "cpu": cpu}


def install_sdk() -> None:
    """Global SDK providers recording to memory (they can be set once per process: the sdk rounds come last)."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--sdk", action="store_true")
    args = parser.parse_args()
    variants = ["off", "api"]
    timings: dict[str, list[dict[str, float]]] = {variant: [] for variant in variants}
    await one_round(1000, args.concurrency, "api")  # warm-up: imports, allocator
    for round_no in range(args.rounds):
        # alternate the order: whatever one round leaves behind (garbage, a warm cache) is shared fairly
        for variant in variants if round_no % 2 == 0 else variants[::-1]:
            timings[variant].append(await one_round(args.jobs, args.concurrency, variant))
            gc.collect()
    if args.sdk:
        install_sdk()
        variants.append("sdk")
        timings["sdk"] = []
        for _ in range(args.rounds):
            timings["sdk"].append(await one_round(args.jobs, args.concurrency, "sdk"))
            gc.collect()
    summary: dict[str, Any] = {"jobs": args.jobs, "rounds": args.rounds}
    for variant, rounds in timings.items():
        drain = statistics.median(r["drain"] for r in rounds)
        enqueue = statistics.median(r["enqueue"] for r in rounds)
        cpu = statistics.median(r["cpu"] for r in rounds)
        summary[variant] = {
            "drain_cpu_s": round(cpu, 4),
            "drain_s": round(drain, 4),
            "enqueue_s": round(enqueue, 4),
            "cpus": [round(r["cpu"], 3) for r in rounds],
        }
        print(f"{variant:>4}: drain {drain:.3f}s wall, {cpu:.3f}s CPU; enqueue {enqueue:.3f}s")
    base = summary["off"]["drain_cpu_s"]
    for variant in variants[1:]:
        summary[variant]["cpu_vs_off"] = round(summary[variant]["drain_cpu_s"] / base - 1, 4)
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
