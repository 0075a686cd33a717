"""``jobqueue failed list | retry ID… | retry --all | purge``: look at failed jobs, run them again, clear them.

Bulk changes (``retry --all``, ``purge``) ask for confirmation on stderr and read
the answer from stdin (no answer, e.g. stdin closed, means no); ``--yes``
skips the question. ``--json`` prints one JSON document on stdout for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from .._contract.capabilities import Monitoring
from .._contract.records import JobRecord
from .._contract.storage import Storage
from .._durations import from_ms
from .._errors import StorageError
from .._failure import decode_error
from .._types import JobState
from .common import CliError, connecting, monitoring, open_storage, unreachable
from .output import Output, terminal_safe

__all__ = ["add_failed_parser", "failed_jobs", "run_failed"]

_PAGE = 200


def add_failed_parser(sub: Any, target: argparse.ArgumentParser) -> None:
    """The ``failed`` command and its ``list``, ``retry`` and ``purge`` subcommands."""
    failed = sub.add_parser(
        "failed",
        help="list failed jobs, retry them, or purge them",
        description="Failed jobs keep their error until their result TTL ends. List them, queue them "
        "again with their attempts reset, or delete them. Needs a storage with monitoring.",
    )
    actions = failed.add_subparsers(dest="action", metavar="ACTION", required=True)
    scripted = argparse.ArgumentParser(add_help=False, parents=[target])
    scripted.add_argument("--json", action="store_true", help="print JSON on stdout (for scripts)")
    listing = actions.add_parser("list", parents=[scripted], help="failed jobs, newest first")
    listing.add_argument(
        "--limit", type=_positive, default=50, metavar="N", help="show at most N jobs (default 50)"
    )
    retry = actions.add_parser("retry", parents=[scripted], help="queue failed jobs again (attempts reset)")
    retry.add_argument("ids", nargs="*", metavar="ID", help="the failed jobs to retry")
    retry.add_argument("--all", action="store_true", help="retry every failed job (asks first)")
    retry.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    purge = actions.add_parser("purge", parents=[scripted], help="delete every failed job (asks first)")
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


async def failed_jobs(storage: Monitoring, limit: int | None = None) -> AsyncIterator[JobRecord]:
    """The failed jobs of the storage's namespace, newest first (all of them when ``limit`` is None)."""
    cursor: str | None = None
    seen = 0
    while True:
        size = _PAGE if limit is None else min(_PAGE, limit - seen)
        page = await storage.list_jobs(state=JobState.FAILED, cursor=cursor, limit=size)
        for record in page.records:
            yield record
        seen += len(page.records)
        cursor = page.next_cursor
        if cursor is None or (limit is not None and seen >= limit):
            return


@asynccontextmanager
async def _monitored(args: argparse.Namespace) -> AsyncIterator[Monitoring]:
    storage = open_storage(args.storage, args.queue)
    admin = monitoring(storage, "failed")
    with connecting(args.storage):
        await storage.connect()
    try:
        yield admin
    except StorageError as exc:
        raise unreachable(args.storage, exc) from exc
    finally:
        await storage.disconnect()


async def run_failed(args: argparse.Namespace, out: Output) -> int:
    """Run ``failed list``, ``failed retry`` or ``failed purge``."""
    if args.action == "retry" and bool(args.ids) == bool(args.all):
        raise CliError("failed retry: give job ids or --all (not both)", 2)
    async with _monitored(args) as storage:
        if args.action == "list":
            return await failed_list(storage, args, out)
        if args.action == "retry":
            return await failed_retry(storage, args, out)
        return await failed_purge(storage, args, out)


def _row(record: JobRecord) -> dict[str, Any]:
    error = decode_error(record.error)
    return {
        "id": record.id,
        "attempts": record.attempts,
        "failed_at": from_ms(record.updated_at).isoformat(timespec="milliseconds"),
        "error_type": str(error.get("type", "Error")),
        "error": str(error.get("message", "")),
        "code": str(error.get("code", "")),
    }


def _json(out: Output, value: Any) -> None:
    print(json.dumps(value), file=out.stdout, flush=True)


def _name(storage: Monitoring) -> str:
    assert isinstance(storage, Storage)
    return storage.name


async def failed_list(storage: Monitoring, args: argparse.Namespace, out: Output) -> int:
    """Print the newest ``--limit`` failed jobs."""
    rows = [_row(record) async for record in failed_jobs(storage, args.limit)]
    if args.json:
        _json(out, rows)
        return 0
    if not rows:
        out.print(f"no failed jobs in queue {_name(storage)!r}")
        return 0
    table = [
        [row["id"], str(row["attempts"]), row["failed_at"], f"{row['error_type']}: {row['error']}"[:100]]
        for row in rows
    ]
    out.table(f"failed jobs in queue {_name(storage)!r}", ["id", "attempts", "failed at", "error"], table)
    return 0


async def _confirm(out: Output, question: str, args: argparse.Namespace) -> None:
    """Ask ``question`` unless ``--yes``; anything but y/yes (EOF included) ends the command."""
    if args.yes:
        return
    print(f"{terminal_safe(question)} [y/N] ", end="", file=out.stderr, flush=True)
    answer = await asyncio.to_thread(sys.stdin.readline)
    if answer.strip().lower() not in ("y", "yes"):
        raise CliError("not confirmed; nothing was changed (pass --yes to skip the question)")


async def failed_retry(storage: Monitoring, args: argparse.Namespace, out: Output) -> int:
    """Queue failed jobs again; exit 1 when a named job was not failed."""
    if args.all:
        ids = [record.id async for record in failed_jobs(storage)]
        if not ids:
            return _report_retry(out, args, [], [])
        await _confirm(out, f"retry {len(ids)} failed job(s) in queue {_name(storage)!r}?", args)
    else:
        ids = list(dict.fromkeys(args.ids))
    retried: list[str] = []
    refused: list[str] = []
    for job_id in ids:
        try:
            done = await storage.retry_failed(job_id)
        except (ValueError, TypeError) as exc:
            raise CliError(f"bad job id {job_id!r}: {exc}", 2) from exc
        (retried if done else refused).append(job_id)
    return _report_retry(out, args, retried, refused)


def _report_retry(out: Output, args: argparse.Namespace, retried: list[str], refused: list[str]) -> int:
    if args.json:
        _json(out, {"retried": retried, "not_failed": refused})
    else:
        for job_id in retried:
            out.print(f"retried {job_id}", style="green")
        if not retried and not refused:
            out.print("no failed jobs to retry")
        for job_id in refused:
            out.print(f"not retried {job_id}: it is not a failed job (or it expired)", style="yellow")
    return 1 if refused else 0


async def failed_purge(storage: Monitoring, args: argparse.Namespace, out: Output) -> int:
    """Delete every failed job of the queue."""
    count = (await storage.counts())[JobState.FAILED]
    if count:
        await _confirm(out, f"delete {count} failed job(s) in queue {_name(storage)!r}?", args)
    purged = await storage.purge([JobState.FAILED]) if count else 0
    if args.json:
        _json(out, {"purged": purged})
    else:
        out.print(f"purged {purged} failed job(s)", style="green" if purged else None)
    return 0
