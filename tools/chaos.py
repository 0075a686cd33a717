"""Chaos run: real producers, workers and reapers under random faults; every accepted job must complete.

    uv run python tools/chaos.py --backend redis --duration 600
    uv run python tools/chaos.py --backend redis-cluster --duration 600
    uv run python tools/chaos.py --backend postgres --duration 600

Starts a throw-away server (Redis or Valkey, AOF with ``appendfsync always``:
with the default ``everysec`` a SIGKILLed server may lose the last second of
writes it had acknowledged, and the run would report jobs lost by Redis, not
by jobqueue; PostgreSQL, in a schema of its own, as the ``postgres`` user) or
a directory (FileStorage), 2 producer processes (``enqueue`` and
``enqueue_and_wait`` with unique ids), 4 worker processes whose handler logs
every execution to an append-only ledger, and 2 reapers with leader election.
For ``--duration`` seconds it injects faults (SIGKILL of a busy worker,
SIGSTOP of a worker past the visibility timeout, SIGKILL of the leading
reaper, SIGKILL and restart of the server (PostgreSQL: ``pg_ctl stop -m
immediate``, a crash that replays the WAL at the next start), a network partition between the
host and the server's network namespace for longer than the lease), then lets
the queue drain, waits for the results to expire, and prints the checks. A
share of the jobs run several visibility timeouts, so leases are renewed
under faults. Exit code 0 only when every
check passes. The run directory (ledger, fault log, process logs) is kept on
failure or with ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import get_args

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tools.*

from jobqueue import JobQueueError

from tools.chaos_checks import Evidence, Report, build_report
from tools.chaos_config import Backend, ChaosConfig, RunFiles, make_storage
from tools.chaos_faults import Cluster, FaultInjector, Server
from tools.chaos_ledger import read_completions, read_faults, read_ledger, read_producers, read_reaper_events
from tools.chaos_netns import NetnsUnavailable, NetworkJail, clean_leftovers
from tools.chaos_observer import Observer, empty_worker_dirs, storage_size
from tools.clusters import ClusterProcess
from tools.postgres_server import PostgresServer
from tools.servers import ServerKind, ServerProcess

__all__ = ["main", "run_chaos"]

PRODUCERS, WORKERS, REAPERS = 2, 4, 2


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.2) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; storage errors count as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await condition():
                return True
        except JobQueueError:
            pass
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


async def run(
    config: ChaosConfig,
    files: RunFiles,
    server: Server | None,
    jail: NetworkJail | None,
    log: Callable[[str], None],
    redis_cluster: ClusterProcess | None = None,
) -> Report:
    """Run the whole scenario and return the checked report."""
    storage = make_storage(config, observer=True)
    await storage.connect()
    cluster = Cluster(files)
    observer = Observer(storage, files, config)
    observing: asyncio.Task[None] | None = None
    try:
        baseline, _ = await storage_size(config)
        for _ in range(REAPERS):
            cluster.spawn("reaper")
        for _ in range(WORKERS):
            cluster.spawn("worker")
        for _ in range(PRODUCERS):
            cluster.spawn("producer")
        started = time.monotonic()
        observing = asyncio.create_task(observer.run())
        injector = FaultInjector(
            config, files, cluster, server, random.Random(config.seed), jail, redis_cluster
        )
        log(f"running {config.duration:g}s of faults on {config.backend} ({files.root})")
        await injector.run(started + config.duration)
        await injector.finish()
        log(f"faults over ({len(injector.faults)}); stopping the producers")
        killed = await cluster.stop_role("producer", timeout=config.wait_timeout + 30)
        if killed:
            log(f"producers killed after the timeout: {[proc.pid for proc in killed]}")

        async def drained() -> bool:
            cluster.replace_crashed()
            await observer.poll()
            return not observer.pending

        if not await wait_for(drained, config.drain_timeout, interval=0.5):
            log(f"queue not drained after {config.drain_timeout:g}s: {len(observer.pending)} pending")
        elapsed = time.monotonic() - started
        await cluster.stop_role("worker", timeout=15)
        observing.cancel()
        await asyncio.gather(observing, return_exceptions=True)
        await observer.poll()
        log("drained; waiting for the results to expire")
        # Nothing can expire before its TTL. PostgreSQL deletes expired rows in the leading reaper's
        # passes (at least one every lock_renew), so the reapers run two passes longer.
        await asyncio.sleep(config.result_ttl + 2 * config.lock_renew)
        await cluster.stop_role("reaper", timeout=15)
        raw, _ = await storage_size(config)

        async def back_to_baseline() -> bool:
            # no call of any kind: expired jobs and lapsed registrations of killed workers must go
            # by themselves (Redis expiry, the file storage's sweeper in the running workers)
            return (await storage_size(config))[0] == baseline

        await wait_for(back_to_baseline, config.size_timeout, interval=0.5)
        final, leftovers = await storage_size(config)
        evidence = Evidence(
            config=config,
            producers=read_producers(files),
            observer=observer,
            executions=read_ledger(files),
            completions=read_completions(files),
            reaper_events=read_reaper_events(files),
            faults=read_faults(files),
            elapsed=elapsed,
            size=(baseline, raw, final, leftovers),
            producer_exits=cluster.exit_codes("producer"),
            crashed=[f"{proc.role}-{proc.index} (exit {proc.popen.poll()})" for proc in cluster.crashed()],
            empty_worker_dirs=await asyncio.to_thread(empty_worker_dirs, config),
        )
        files.observed.write_text(json.dumps(observer.snapshot()))
        return build_report(evidence)
    finally:
        if observing is not None:
            observing.cancel()
            await asyncio.gather(observing, return_exceptions=True)
        cluster.kill_everything()
        await storage.disconnect()


def _jail(backend: Backend, partition: bool) -> tuple[NetworkJail | None, str]:
    """A network namespace for the server, or None and the reason the partition fault is skipped."""
    if backend == "file":
        return None, "FileStorage has no network"
    if backend.endswith("-cluster"):
        return None, "a cluster runs on loopback (its server fault is a failover)"
    if not partition:
        return None, "--no-partition"
    jail = NetworkJail()
    try:
        jail.create()
    except NetnsUnavailable as exc:
        return None, f"network namespaces unavailable: {exc}"
    return jail, ""


def _server_version(server: Server) -> str:
    done = subprocess.run([str(server.binary), "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()


def run_chaos(
    config_args: dict[str, object], backend: Backend, duration: float, seed: int, run_dir: Path
) -> tuple[Report, dict[str, object]]:
    """Set up the server or directory, run, tear down; return the report and facts about the run."""
    files = RunFiles(run_dir)
    server: Server | None = None
    redis_cluster: ClusterProcess | None = None
    partition = bool(config_args.pop("partition", True))
    left = clean_leftovers()  # of runs whose supervisor was SIGKILLed
    if left:
        print(f"[chaos] removed leftovers of earlier runs: {', '.join(left)}", flush=True)
    jail, skipped = _jail(backend, partition)
    meta: dict[str, object] = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["tools/chaos.py", *sys.argv[1:]]),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
    }
    try:
        if backend == "file":
            url = (run_dir / "store").as_uri()
        elif backend in ("redis-cluster", "valkey-cluster"):
            kind: ServerKind = "redis" if backend == "redis-cluster" else "valkey"
            redis_cluster = ClusterProcess.start_new(kind, aof=True)
            url = f"{redis_cluster.url}?prefix=chaos-{secrets.token_hex(4)}&min_replicas=1"
        else:
            host, launcher = (jail.ns_address, jail.launcher) if jail else ("127.0.0.1", ())
            if backend == "postgres":
                server = PostgresServer(host=host, launcher=launcher)
                query = f"schema=chaos_{secrets.token_hex(4)}"
            else:
                single: ServerKind = "redis" if backend == "redis" else "valkey"
                server = ServerProcess(single, aof=True, host=host, launcher=launcher)
                query = f"prefix=chaos-{secrets.token_hex(4)}"
            server.start()
            meta["server"] = _server_version(server)
            url = f"{server.url}?{query}"
        config = ChaosConfig(
            backend=backend,
            url=url,
            duration=duration,
            seed=seed,
            partition=skipped,
            **config_args,  # type: ignore[arg-type]  # CLI overrides
        )
        config.dump(files.config)
        meta["config"] = dataclasses.asdict(config)
        report = asyncio.run(
            run(config, files, server, jail, lambda line: print(f"[chaos] {line}", flush=True), redis_cluster)
        )
        meta["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        meta["load_average_at_end"] = os.getloadavg()
        return report, meta
    finally:
        if server is not None:
            server.close()
        if redis_cluster is not None:
            redis_cluster.close()
        if jail is not None:
            jail.destroy()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=list(get_args(Backend)), required=True)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of faults (default 60)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--rate", type=float, default=None, help="jobs per second per producer")
    parser.add_argument(
        "--drain-timeout", type=float, default=None, help="seconds to wait for the queue to drain"
    )
    parser.add_argument(
        "--run-dir", type=Path, default=None, help="where the ledger and logs go (default: a temp dir)"
    )
    parser.add_argument(
        "--json-out", "--json", type=Path, default=None, help="also write the checks as JSON to this file"
    )
    parser.add_argument(
        "--no-partition",
        action="store_true",
        help="no network namespace, no partition fault (Redis/Valkey/PostgreSQL)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run directory even when the run passes")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be > 0 seconds")
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    overrides: dict[str, object] = {}
    if args.rate is not None:
        overrides["producer_rate"] = args.rate
    if args.drain_timeout is not None:
        overrides["drain_timeout"] = args.drain_timeout
    overrides["partition"] = not args.no_partition
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix=f"jobqueue-chaos-{args.backend}-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"[chaos] seed {seed}, run dir {run_dir}", flush=True)
    # a SIGTERM unwinds through the finally blocks: the server, its namespace and the roles go too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    report, meta = run_chaos(overrides, args.backend, args.duration, seed, run_dir)
    print(report.render(), flush=True)
    if args.json_out is not None:
        args.json_out.write_text(report.to_json(meta) + "\n")
    if report.passed and not args.keep and args.run_dir is None:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
