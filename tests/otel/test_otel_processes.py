"""One trace from a producer process to a worker process, through a shared storage (Redis, files).

Each process installs the SDK globally (they are separate processes) and
writes its spans as JSON; the test joins them by trace and span ids.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    # stdout carries the child's progress lines; its stderr (logs) goes to the test's output
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.otel.otel_proc", *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )


async def _run_pair(url: str, tmp_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    queue = f"otel-{uuid.uuid4().hex[:8]}"
    worker_out, producer_out = tmp_path / "worker.json", tmp_path / "producer.json"
    worker = await _spawn("work", url, queue, str(worker_out), "basic")
    try:
        assert await _line(worker) == "ready"
        producer = await _spawn("produce", url, queue, str(producer_out), "basic")
        assert await asyncio.wait_for(producer.wait(), 120) == 0
        assert await asyncio.wait_for(worker.wait(), 120) == 0
    finally:
        await _kill(worker)
    return json.loads(producer_out.read_text()), json.loads(worker_out.read_text())


async def _line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    return (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def _run_crash(url: str, tmp_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A worker is SIGKILLed during the job's first attempt; a second one (with a reaper) runs it again."""
    queue = f"otel-{uuid.uuid4().hex[:8]}"
    producer_out, survivor_out = tmp_path / "producer.json", tmp_path / "survivor.json"
    doomed = await _spawn("work", url, queue, str(tmp_path / "doomed.json"), "crash")
    try:
        assert await _line(doomed) == "ready"
        producer = await _spawn("produce", url, queue, str(producer_out), "crash")
        assert await asyncio.wait_for(producer.wait(), 120) == 0
        assert await _line(doomed) == "processing victim 1"
    finally:
        await _kill(doomed)
    survivor = await _spawn("work", url, queue, str(survivor_out), "crash")
    try:
        assert await asyncio.wait_for(survivor.wait(), 120) == 0
    finally:
        await _kill(survivor)
    return json.loads(producer_out.read_text()), json.loads(survivor_out.read_text())


def _check_one_trace_per_job(produced: list[dict[str, Any]], worked: list[dict[str, Any]]) -> None:
    (request,) = [s for s in produced if s["name"] == "request"]
    sends = {s["attributes"]["messaging.message.id"]: s for s in produced if s["kind"] == "PRODUCER"}
    assert set(sends) == {"plain", "retried", "scheduled"}
    for send in sends.values():
        assert send["trace_id"] == request["trace_id"] and send["parent_id"] == request["span_id"]
    processed = [s for s in worked if s["kind"] == "CONSUMER"]
    attempts: dict[str, list[str]] = {}
    for span in processed:
        job_id = span["attributes"]["messaging.message.id"]
        send = sends[job_id]
        assert span["trace_id"] == request["trace_id"], (
            f"{job_id}: the worker's span joins the producer's trace"
        )
        assert span["parent_id"] == send["span_id"], (
            f"{job_id}: a child of its send span, in the other process"
        )
        attempts.setdefault(job_id, []).append(span["attributes"]["jobqueue.job.outcome"])
    assert attempts == {
        "plain": ["completed"],
        "retried": ["retried", "completed"],
        "scheduled": ["completed"],
    }


@pytest.mark.redis
@pytest.mark.slow
async def test_one_trace_from_producer_to_worker_on_redis(redis_url: str, tmp_path: Path) -> None:
    prefix = f"otel{uuid.uuid4().hex[:8]}"
    separator = "&" if "?" in redis_url else "?"
    _check_one_trace_per_job(*await _run_pair(f"{redis_url}{separator}prefix={prefix}", tmp_path))


@pytest.mark.file
@pytest.mark.slow
async def test_one_trace_from_producer_to_worker_on_files(tmp_path: Path) -> None:
    root = tmp_path / "queue"
    _check_one_trace_per_job(*await _run_pair(f"file://{root}", tmp_path))


def _check_recovered_trace(produced: list[dict[str, Any]], worked: list[dict[str, Any]]) -> None:
    (send,) = [s for s in produced if s["kind"] == "PRODUCER"]
    (process,) = [s for s in worked if s["kind"] == "CONSUMER"]  # the killed worker's span never ended
    assert process["attributes"]["jobqueue.job.attempt"] == 2
    assert process["attributes"]["jobqueue.job.outcome"] == "completed"
    assert process["trace_id"] == send["trace_id"] and process["parent_id"] == send["span_id"]


@pytest.mark.redis
@pytest.mark.slow
async def test_a_job_recovered_after_a_worker_is_killed_continues_the_trace_on_redis(
    redis_url: str, tmp_path: Path
) -> None:
    separator = "&" if "?" in redis_url else "?"
    url = f"{redis_url}{separator}prefix=otel{uuid.uuid4().hex[:8]}"
    _check_recovered_trace(*await _run_crash(url, tmp_path))


@pytest.mark.file
@pytest.mark.slow
async def test_a_job_recovered_after_a_worker_is_killed_continues_the_trace_on_files(tmp_path: Path) -> None:
    _check_recovered_trace(*await _run_crash(f"file://{tmp_path / 'queue'}", tmp_path))


@pytest.mark.postgres
@pytest.mark.slow
async def test_one_trace_from_producer_to_worker_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    separator = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{separator}schema=otel_{uuid.uuid4().hex[:8]}"
    _check_one_trace_per_job(*await _run_pair(url, tmp_path))
