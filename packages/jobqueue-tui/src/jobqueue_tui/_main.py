"""The ``jobqueue-tui`` console script."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from jobqueue import JobQueueError, Storage, storage_from_url
from jobqueue.storage import redact_url

from ._app import DashboardApp
from ._safe import printable

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``jobqueue-tui URL [--queue NAME] [--read-only]``."""
    parser = argparse.ArgumentParser(
        prog="jobqueue-tui",
        description="A live dashboard of a jobqueue storage: counts, throughput, workers and jobs.",
    )
    parser.add_argument(
        "url",
        nargs="?",
        default=os.environ.get("JOBQUEUE_STORAGE"),
        help="storage URL, e.g. redis://localhost:6379/0 or file:///var/lib/jobqueue "
        "(default: $JOBQUEUE_STORAGE)",
    )
    parser.add_argument(
        "--queue",
        default=os.environ.get("JOBQUEUE_QUEUE"),
        help="namespace to watch first (default: $JOBQUEUE_QUEUE, else the storage's default)",
    )
    parser.add_argument("--read-only", action="store_true", help="hide cancel, retry and purge")
    parser.add_argument(
        "--refresh",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="fallback refresh interval when no event arrives (default: 5)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the dashboard; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("a storage URL is required (or set JOBQUEUE_STORAGE)")
    if args.refresh <= 0:
        parser.error(f"--refresh must be > 0 seconds, got {args.refresh}")
    try:
        storage = storage_from_url(args.url)
    except (ValueError, TypeError, JobQueueError) as exc:  # the message shows the URL redacted
        print(printable(f"jobqueue-tui: {exc}"), file=sys.stderr)
        return 2
    return asyncio.run(_run(storage, args))


async def _run(storage: Storage, args: argparse.Namespace) -> int:
    display = redact_url(args.url)
    try:
        await storage.connect()
    except JobQueueError as exc:
        print(printable(f"jobqueue-tui: cannot connect to {display}: {exc}"), file=sys.stderr)
        return 1
    except ValueError as exc:  # a URL part that the backend's client library reads only when connecting
        print(printable(f"jobqueue-tui: bad storage url {display!r}: {exc}"), file=sys.stderr)
        return 2
    try:
        try:
            app = DashboardApp(
                storage,
                url=args.url,
                queue=args.queue,
                read_only=args.read_only,
                refresh_interval=args.refresh,
            )
        except ValueError as exc:  # a bad --queue name
            print(printable(f"jobqueue-tui: {exc}"), file=sys.stderr)
            return 2
        await app.run_async()
        return app.return_code or 0
    finally:
        await storage.disconnect()
