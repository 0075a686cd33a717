"""The ``jobqueue`` command: argument parsing and dispatch to its modules."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .._errors import JobQueueError
from .._urls import redact_secrets
from .common import (
    EXIT_RUNTIME,
    CliError,
    non_negative_seconds,
    positive_int,
    positive_seconds,
    schedule_spec,
)
from .failed import add_failed_parser
from .metrics import add_metrics_options
from .output import Output, make_output, terminal_safe

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace, Output], Coroutine[Any, Any, int]]

_EPILOG = """\
environment:
  JOBQUEUE_STORAGE   default for --storage (e.g. redis://localhost:6379/0, file:///var/lib/jobqueue)
  JOBQUEUE_QUEUE     default for --queue

exit codes: 0 success, 1 failure (job failed, storage unreachable, handler not importable),
2 bad command line (options, URL, JSON payload); a worker stopped by a second signal exits 128+signal.

Start here: jobqueue demo
"""


def _version() -> str:
    try:
        return version("jobqueue-core")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; ``--storage``/``--queue`` default to ``JOBQUEUE_STORAGE``/``JOBQUEUE_QUEUE``."""
    env_storage = os.environ.get("JOBQUEUE_STORAGE") or None
    env_queue = os.environ.get("JOBQUEUE_QUEUE") or None

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="verbose logs, tracebacks on errors")
    target = argparse.ArgumentParser(add_help=False, parents=[common])
    target.add_argument(
        "--storage",
        metavar="URL",
        default=env_storage,
        help="storage URL: memory://, redis://host:port/db, file:///path (env: JOBQUEUE_STORAGE)",
    )
    target.add_argument(
        "--queue",
        metavar="NAME",
        default=env_queue,
        help="queue (namespace) name; default: the storage's default queue (env: JOBQUEUE_QUEUE)",
    )

    parser = argparse.ArgumentParser(
        prog="jobqueue",
        description="jobqueue: a reliable job queue. Run workers, enqueue and inspect jobs, try the demo.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jobqueue {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    worker = sub.add_parser(
        "worker",
        parents=[target],
        help="run a handler on a queue until stopped",
        description=(
            "Import MODULE:FUNCTION (the current directory first) and run it on every job of the queue. "
            "SIGTERM or SIGINT stops it gracefully: no new jobs, running ones finish (or are requeued "
            "after --visibility-timeout), exit code 0. A second signal exits at once."
        ),
    )
    worker.add_argument("handler", metavar="MODULE:FUNCTION", help="the handler, e.g. app.tasks:handle")
    worker.add_argument(
        "--concurrency", type=positive_int, default=1, metavar="N", help="jobs run at once (default 1)"
    )
    worker.add_argument("--reaper", action="store_true", help="also run a reaper (recovers stalled jobs)")
    worker.add_argument(
        "--max-attempts", type=positive_int, default=3, metavar="N", help="total tries per job (default 3)"
    )
    worker.add_argument(
        "--job-timeout",
        type=positive_seconds,
        metavar="S",
        help="an attempt running longer fails (default: no limit; a job's own job_timeout wins)",
    )
    worker.add_argument(
        "--schedule",
        action="append",
        type=schedule_spec,
        default=[],
        metavar="NAME=CRON",
        help="also run the handler periodically, e.g. 'nightly=0 3 * * *' (cron in UTC, 5 fields, or 6 "
        "with seconds first); once per tick across all workers; repeatable",
    )
    worker.add_argument(
        "--visibility-timeout",
        type=positive_seconds,
        default=30.0,
        metavar="S",
        help="lease of a running job, and how long a stop waits for running jobs (default 30)",
    )

    add_metrics_options(worker, port_flag="--metrics-port", default=None)

    metrics = sub.add_parser(
        "metrics",
        parents=[target],
        help="serve Prometheus metrics of a storage (jobs per state, workers alive)",
        description=(
            "Serve /metrics for Prometheus: jobs per state of every queue of the storage and workers alive, "
            "read at each scrape. Needs jobqueue-core[prometheus]. Stops on SIGTERM/SIGINT."
        ),
    )
    add_metrics_options(metrics, port_flag="--port", default=9100)

    enqueue = sub.add_parser("enqueue", parents=[target], help="add a job (and wait for its result)")
    enqueue.add_argument("id", metavar="ID", help="job id (a duplicate id is not enqueued twice)")
    enqueue.add_argument("payload", metavar="PAYLOAD_JSON", help="the payload as JSON, e.g. '{\"x\": 1}'")
    enqueue.add_argument("--wait", action="store_true", help="wait for the result and print it")
    enqueue.add_argument("--timeout", type=positive_seconds, metavar="S", help="with --wait (default 30)")
    enqueue.add_argument(
        "--delay", type=non_negative_seconds, metavar="S", help="run the job S seconds later"
    )
    enqueue.add_argument("--max-attempts", type=positive_int, metavar="N", help="total tries (default 3)")

    status = sub.add_parser("status", parents=[target], help="show a job's state and result or error")
    status.add_argument("id", metavar="ID")
    status.add_argument("--traceback", action="store_true", help="print the stored traceback of an error")

    cancel = sub.add_parser("cancel", parents=[target], help="cancel a job that has not started")
    cancel.add_argument("id", metavar="ID")
    cancel.add_argument("--abort", action="store_true", help="also stop the job if it is running")

    sub.add_parser("stats", parents=[target], help="jobs per state, registered workers and their schedules")
    sub.add_parser(
        "migrate",
        parents=[target],
        help="create or upgrade the storage's schema (PostgreSQL); others have none",
    )
    add_failed_parser(sub, target)

    demo = sub.add_parser("demo", parents=[common], help="see jobqueue work, in a few seconds")
    demo.add_argument(
        "--storage",
        metavar="URL",
        help=(
            "storage to run on (default: files in ./.jobqueue when jobqueue-file is installed, else "
            "memory; JOBQUEUE_STORAGE is not used). The demo works in its own queue, 'demo'."
        ),
    )
    demo.add_argument("--jobs", type=positive_int, default=200, metavar="N", help="jobs to run (default 200)")
    return parser


def _command(name: str) -> Command:
    # imported on demand: `jobqueue status` does not need to load the demo
    if name == "worker":
        from .worker import run_worker

        return lambda args, _out: run_worker(args)
    if name == "metrics":
        from .metrics import run_metrics

        return run_metrics
    if name == "demo":
        from .demo import run_demo

        return run_demo
    if name == "failed":
        from .failed import run_failed

        return run_failed
    from . import client as _cli_client

    commands: dict[str, Command] = {
        "enqueue": _cli_client.run_enqueue,
        "status": _cli_client.run_status,
        "cancel": _cli_client.run_cancel,
        "stats": _cli_client.run_stats,
        "migrate": _cli_client.run_migrate,
    }
    return commands[name]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jobqueue`` command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(_TerminalFormatter("%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    if args.debug:  # jobqueue's own debug logs, not every library's
        logging.getLogger("jobqueue").setLevel(logging.DEBUG)
    out = make_output()
    try:
        return asyncio.run(_command(args.command)(args, out))
    except CliError as exc:
        _report(out, exc, str(exc), args)
        return exc.code
    except JobQueueError as exc:
        _report(out, exc, f"{type(exc).__name__}: {exc}", args)
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130


class _TerminalFormatter(logging.Formatter):
    """Log lines with control characters escaped: a job's error message may hold escape sequences."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record), multiline=True)


def _report(out: Output, exc: BaseException, message: str, args: argparse.Namespace) -> None:
    url = getattr(args, "storage", None)
    if args.debug:  # a traceback shows what the user asked for: their own URL, secrets included
        traceback.print_exception(exc, file=sys.stderr)
    # Last line of defence: whatever a library wrote into the message, the URL's secrets are masked.
    out.error(redact_secrets(message, url) if url else message)


if __name__ == "__main__":
    sys.exit(main())
