"""``jobqueue metrics`` and ``jobqueue worker --metrics-port``: a Prometheus ``/metrics`` endpoint."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Any

from .._contract.capabilities import Monitoring
from .._contract.storage import Storage
from .._telemetry import add_observer
from .._urls import redact_url
from .common import CliError, connecting, monitoring, open_storage
from .output import Output

if TYPE_CHECKING:
    from .._prometheus import MetricsServer
    from .._queue import Queue
    from .._reaper import Reaper

__all__ = ["add_metrics_options", "port_number", "run_metrics", "start_worker_metrics"]

log = logging.getLogger("jobqueue.cli")

_MISSING = "the metrics endpoint needs prometheus-client: pip install 'jobqueue-core[prometheus]'"


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free port) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {value}")
    return value


def add_metrics_options(parser: argparse.ArgumentParser, *, port_flag: str, default: int | None) -> None:
    """``port_flag`` (``--metrics-port`` or ``--port``) and the matching host option."""
    host_flag = port_flag.replace("port", "host")
    parser.add_argument(
        port_flag,
        type=port_number,
        default=default,
        metavar="PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (0: any free port, printed at start)"
        + ("" if default is None else f"; default {default}"),
    )
    parser.add_argument(
        host_flag,
        default="0.0.0.0",
        metavar="HOST",
        help="address the metrics endpoint listens on (default all)",
    )


def _serve(
    storage: Storage, host: str, port: int, observer_for: list[Queue[Any, Any] | Reaper]
) -> MetricsServer:
    try:
        from .._prometheus import PrometheusObserver, StorageCollector, new_registry, serve
    except ImportError as exc:
        raise CliError(_MISSING) from exc
    registry = new_registry()
    if observer_for:
        observer = PrometheusObserver(registry)
        for target in observer_for:
            add_observer(target, observer)
    if isinstance(storage, Monitoring):
        registry.register(StorageCollector(storage, asyncio.get_running_loop()))
    else:
        log.warning("%s has no Monitoring capability: no per-state counts or workers", type(storage).__name__)
    try:
        server = serve(registry, host, port)
    except OSError as exc:
        raise CliError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
    log.info("metrics on %s", server.url)
    return server


def start_worker_metrics(
    args: argparse.Namespace, storage: Storage, queue: Queue[Any, Any], reaper: Reaper | None
) -> MetricsServer | None:
    """With ``--metrics-port``: count the worker's jobs and serve them (call before the queue starts)."""
    if args.metrics_port is None:
        return None
    return _serve(storage, args.metrics_host, args.metrics_port, [queue, *([reaper] if reaper else [])])


async def run_metrics(args: argparse.Namespace, out: Output) -> int:
    """Serve the storage's counts until SIGTERM/SIGINT; return the exit code."""
    storage = open_storage(args.storage, args.queue)
    watched = monitoring(storage, "jobqueue metrics")
    try:
        with connecting(args.storage):
            await storage.connect()
            await watched.counts()  # fail now, not at the first scrape, when the storage is unreachable
    except CliError:
        await storage.disconnect()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = None
    try:
        server = _serve(storage, args.host, args.port, [])
        log.info("watching %s", redact_url(args.storage))
        await stop.wait()
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if server is not None:
            await asyncio.to_thread(server.close)
        await storage.disconnect()
