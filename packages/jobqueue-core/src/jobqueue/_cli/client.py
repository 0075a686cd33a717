"""``jobqueue enqueue | status | cancel | stats``: one request to a storage, printed for a person."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from .._contract.capabilities import Migrations
from .._durations import now_ms
from .._errors import JobCancelledError, JobFailedError, JobTimeoutError, StorageError
from .._queue import Queue
from .._schedule_info import ScheduleInfo, schedules_of
from .._types import JobState
from .._urls import redact_secrets, redact_url
from .common import CliError, connecting, monitoring, open_storage, parse_payload, unreachable
from .output import Output

__all__ = ["run_cancel", "run_enqueue", "run_stats", "run_status"]


def to_json(value: Any) -> str:
    """A result as JSON when it can be, else its repr (a custom serde may return anything)."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


@asynccontextmanager
async def _started(args: argparse.Namespace, **options: Any) -> AsyncIterator[Queue[Any, Any]]:
    """A producer-only queue on the storage of ``args``; an unreachable storage is one clear error."""
    queue: Queue[Any, Any] = Queue(open_storage(args.storage, args.queue), **options)
    with connecting(args.storage):
        await queue.start()
    try:
        yield queue
    except StorageError as exc:
        raise CliError(
            f"storage {redact_url(args.storage)} failed: {redact_secrets(str(exc), args.storage)}"
        ) from exc
    finally:
        await queue.stop()


async def run_enqueue(args: argparse.Namespace, out: Output) -> int:
    """Enqueue one job; with ``--wait`` print its result (exit 1 when it fails or times out)."""
    if args.timeout is not None and not args.wait:
        raise CliError("--timeout needs --wait", 2)
    payload = parse_payload(args.payload)
    options = {"max_attempts": args.max_attempts, "delay": args.delay}
    async with _started(args) as queue:
        try:
            if args.wait:
                result = await queue.enqueue_and_wait(
                    args.id, payload, timeout=args.timeout or 30.0, **options
                )
                out.print(to_json(result))
                return 0
            outcome = await queue.enqueue(args.id, payload, **options)
        except (ValueError, TypeError) as exc:
            raise CliError(str(exc), 2) from exc
        except (JobFailedError, JobTimeoutError, JobCancelledError) as exc:
            raise CliError(str(exc)) from exc
    if outcome.status == "queued":
        out.print(f"queued {outcome.job_id}", style="green")
    elif outcome.status == "completed":
        out.print(f"completed {outcome.job_id} (cached result): {to_json(outcome.result)}", style="green")
    else:
        out.print(
            f"duplicate {outcome.job_id}: a job with this id is {outcome.existing_state}", style="yellow"
        )
    return 0


async def run_status(args: argparse.Namespace, out: Output) -> int:
    """Print a job's state, attempts, and result or error; exit 1 when there is no such job."""
    async with _started(args) as queue:
        try:
            status = await queue.get_status(args.id)
        except (ValueError, TypeError) as exc:
            raise CliError(str(exc), 2) from exc
    if status is None:
        raise CliError(f"job {args.id!r} not found (never enqueued, cancelled, or expired)")
    out.print(f"id:        {status.id}")
    out.print(f"state:     {status.state}", style=_STATE_STYLES.get(status.state))
    out.print(f"attempts:  {status.attempts}")
    out.print(f"created:   {status.created_at.isoformat(timespec='milliseconds')}")
    if status.progress is not None:
        out.print(f"progress:  {to_json(status.progress)}")
    if status.state is JobState.COMPLETED:
        out.print(f"result:    {to_json(status.result)}")
    if status.error is not None:
        out.print(f"error:     {status.error.get('type', 'Error')}: {status.error.get('message', '')}")
        out.print(f"code:      {status.error.get('code', '')}")
        if args.traceback and status.error.get("traceback"):
            out.print(str(status.error["traceback"]).rstrip())
    return 0


_STATE_STYLES = {
    JobState.QUEUED: "cyan",
    JobState.PROCESSING: "blue",
    JobState.FAILING: "yellow",
    JobState.COMPLETED: "green",
    JobState.FAILED: "red",
}

_CANCEL_REFUSALS = {
    "not_found": "job {id!r} not found (never enqueued, already cancelled, or expired)",
    "processing": "job {id!r} is running and cannot be cancelled (use --abort to stop it)",
    "completed": "job {id!r} already completed",
}


async def run_cancel(args: argparse.Namespace, out: Output) -> int:
    """Cancel a job that has not started (``--abort``: also stop a running one)."""
    async with _started(args) as queue:
        try:
            outcome = await (queue.abort(args.id) if args.abort else queue.cancel(args.id))
        except (ValueError, TypeError) as exc:
            raise CliError(str(exc), 2) from exc
    if outcome == "cancelled":
        out.print(f"cancelled {args.id}", style="green")
        return 0
    if outcome == "processing" and args.abort:
        out.print(f"abort requested for running job {args.id}: its attempt fails, no retry", style="yellow")
        return 0
    raise CliError(_CANCEL_REFUSALS[outcome].format(id=args.id))


async def run_stats(args: argparse.Namespace, out: Output) -> int:
    """Print the number of jobs per state, the registered workers and the schedules they run."""
    storage = open_storage(args.storage, args.queue)
    admin = monitoring(storage, "stats")
    with connecting(args.storage):
        await storage.connect()
    try:
        counts = await admin.counts()
        workers = await admin.list_workers()
        namespaces = await admin.list_namespaces()
    except StorageError as exc:
        raise unreachable(args.storage, exc) from exc
    finally:
        await storage.disconnect()
    out.heading(f"queue {storage.name!r} on {redact_url(args.storage)}")
    others = sorted(set(namespaces) - {storage.name})
    if others:
        out.print(f"other queues in this storage: {', '.join(others)}")
    rows = [[str(state), f"{counts.get(state, 0):,}"] for state in JobState]
    out.table("jobs", ["state", "count"], rows)
    now = now_ms()
    worker_rows = [
        [
            worker.id,
            datetime.fromtimestamp(worker.last_seen / 1000, UTC).strftime("%H:%M:%S"),
            f"{(now - worker.last_seen) / 1000:.1f}s ago",
            "alive" if worker.expires_at > now else "LAPSED",
            str(len(worker.jobs)),
        ]
        for worker in workers
    ]
    if worker_rows:
        out.table("workers", ["worker", "last seen (UTC)", "heartbeat", "status", "jobs"], worker_rows)
    else:
        out.print("workers: none registered")
    _print_schedules(out, schedules_of(workers))
    return 0


def _print_schedules(out: Output, schedules: list[ScheduleInfo]) -> None:
    if not schedules:
        return  # a queue without schedules: nothing to say
    rows = [
        [
            info.name,
            info.spec,
            info.timezone,
            info.next_run().strftime("%Y-%m-%d %H:%M:%S"),
            info.last_tick.strftime("%Y-%m-%d %H:%M:%S") if info.last_tick else "-",
            ", ".join(info.workers),
        ]
        for info in schedules
    ]
    columns = ["schedule", "spec", "timezone", "next run (UTC)", "last tick (UTC)", "workers"]
    out.table("schedules", columns, rows)


async def run_migrate(args: argparse.Namespace, out: Output) -> int:
    """Create or upgrade the storage's schema, on a storage with the ``Migrations`` capability."""
    storage = open_storage(args.storage, args.queue)
    if not isinstance(storage, Migrations):
        out.print(f"{type(storage).__name__} keeps no versioned schema: nothing to migrate")
        return 0
    with connecting(args.storage):
        await storage.connect()
    try:
        with connecting(args.storage):
            version = await storage.migrate()
    finally:
        await storage.disconnect()
    out.print(f"schema of {redact_url(args.storage)} is at version {version}", style="green")
    return 0
