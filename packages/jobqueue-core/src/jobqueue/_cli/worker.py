"""``jobqueue worker``: import a handler, run it on a queue until SIGTERM/SIGINT, stop gracefully."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from .._contract.capabilities import LeaderLock
from .._contract.storage import Storage
from .._queue import Queue
from .._reaper import LeaderElection, Reaper
from .._urls import redact_url
from .common import CliError, connecting, open_storage
from .metrics import start_worker_metrics
from .output import terminal_safe

__all__ = ["load_handler", "run_worker"]

log = logging.getLogger("jobqueue.cli")


def load_handler(spec: str) -> Callable[..., Any]:
    """Import ``module:attribute`` (dotted attributes allowed), the current directory first on the path.

    Raises:
        CliError: a malformed spec (usage), an unimportable module, a missing
            attribute or a value that is not callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"handler must look like 'package.module:function', got {spec!r}", 2)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # like uvicorn and arq: the app next to you is importable
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            raise CliError(
                f"cannot import handler module {module_name!r}: {exc} (searched the current directory "
                f"{cwd} and the installed packages)"
            ) from exc
        raise CliError(f"error while importing {module_name!r}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise CliError(f"error while importing {module_name!r}: {type(exc).__name__}: {exc}") from exc
    target: Any = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CliError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(target):
        raise CliError(f"handler {spec!r} is not callable (type: {type(target).__name__})")
    return target  # type: ignore[no-any-return]  # callable() narrowed it; the signature is the user's


class _Tracker:
    """Logs job outcomes and knows which jobs are in flight (for the stop message)."""

    def __init__(self, queue: Queue[Any, Any]) -> None:
        self.running: dict[str, float] = {}
        queue.on("processing", self._processing)
        queue.on("completed", lambda job_id, _result: self._finished(job_id, "completed"))
        queue.on("failing", self._failing)
        queue.on("failed", lambda job_id, error: self._finished(job_id, f"failed: {_describe(error)}"))
        queue.on("requeued", lambda job_id: self._finished(job_id, "requeued (worker stopping)"))

    def _processing(self, job_id: str, attempt: int) -> None:
        self.running[job_id] = time.perf_counter()
        log.debug("job %r started (attempt %d)", job_id, attempt)

    def _failing(self, job_id: str, error: BaseException, attempt: int, delay: float) -> None:
        self._finished(job_id, f"attempt {attempt} failed: {_describe(error)}; retry in {delay:.2f}s")

    def _finished(self, job_id: str, what: str) -> None:
        started = self.running.pop(job_id, None)
        took = "" if started is None else f" in {time.perf_counter() - started:.3f}s"
        log.info("job %r %s%s", job_id, terminal_safe(what), took)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _reaper_for(storage: Storage, args: argparse.Namespace) -> Reaper:
    election = LeaderElection() if isinstance(storage, LeaderLock) else None
    return Reaper(storage, visibility_timeout=args.visibility_timeout, leader_election=election)


def _install_signals(stop: asyncio.Event, tracker: _Tracker, drain: float) -> Callable[[], None]:
    """First SIGTERM/SIGINT: stop gracefully. Second: exit at once (non-zero)."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        name = signal.Signals(signum).name
        if len(received) == 1:
            log.info(
                "%s received: stopping; %d running job(s) get up to %gs to finish, then are requeued "
                "(send it again to exit at once)",
                name,
                len(tracker.running),
                drain,
            )
            stop.set()
            return
        log.warning(
            "second %s: exiting now; %d running job(s) will be recovered by a reaper after their lease",
            name,
            len(tracker.running),
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signum)  # threads running sync handlers cannot be joined: leave without them

    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal, int(sig))

    def remove() -> None:
        for sig in signals:
            loop.remove_signal_handler(sig)

    return remove


async def run_worker(args: argparse.Namespace) -> int:
    """Run the worker until a signal; return the exit code."""
    handler = load_handler(args.handler)
    storage = open_storage(args.storage, args.queue)
    queue: Queue[Any, Any] = Queue(
        storage,
        concurrency=args.concurrency,
        visibility_timeout=args.visibility_timeout,
        max_attempts=args.max_attempts,
        job_timeout=args.job_timeout,
    )
    queue.execute(handler)
    for name, cron in args.schedule:
        try:
            queue.schedule(name, cron=cron)
        except (ValueError, TypeError) as exc:
            raise CliError(f"--schedule {name}={cron}: {exc}", 2) from exc
    tracker = _Tracker(queue)
    reaper = _reaper_for(storage, args) if args.reaper else None
    metrics = start_worker_metrics(args, storage, queue, reaper)
    stop = asyncio.Event()
    remove_signals = _install_signals(stop, tracker, args.visibility_timeout)
    try:
        try:
            with connecting(args.storage):
                await queue.start()
                if reaper is not None:
                    await reaper.start()
        except CliError:
            await queue.stop(0)
            raise
        log.info(
            "worker %s: handler %s, storage %s, queue %r, concurrency %d%s",
            terminal_safe(queue.worker_id),
            args.handler,
            redact_url(args.storage),
            queue.name,
            args.concurrency,
            ", with a reaper" if reaper is not None else "",
        )
        for name, cron in args.schedule:
            log.info("schedule %r: %s (UTC), once per tick across workers", name, cron)
        await stop.wait()
        if reaper is not None:
            await reaper.stop()
        await queue.stop()
        log.info("worker %s stopped", terminal_safe(queue.worker_id))
        return 0
    finally:
        remove_signals()
        if metrics is not None:
            await asyncio.to_thread(metrics.close)
