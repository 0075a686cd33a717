"""Benchmark: jobqueue against the raw Redis limit, the original (Node) and the Python peers, plus FileStorage.

    uv run python tools/bench.py --setup          # once: the peers and the original into .bench/
    uv run python tools/bench.py                  # everything, medians of 3 runs (about 10 minutes)
    uv run python tools/bench.py --quick          # one smaller run (1-2 minutes)
    uv run python tools/bench.py --only jobqueue,raw,original --profile

Run by hand, not in CI. Starts its own redis-server on a free port (tools/servers.py;
never the system Redis), and a directory under .bench/ for FileStorage. Every
system runs the same workloads through a driver process (tools/bench_*.py,
tools/bench_node/driver.mjs) speaking the protocol of tools/bench_common.py:

- enqueue: a producer process enqueues N jobs with 50 in flight;
- drain: then one worker process at concurrency 50 runs them (no-op handler), timed
  from the worker's start to its last completion;
- request/response: with a worker process serving, a client process runs 1,000
  sequential enqueue-and-wait calls (p50/p95/p99), then 50 concurrent waiters over 2,000 jobs;
- Redis commands per job: INFO commandstats before and after each phase (commands run
  inside Lua scripts included), divided by the job count;
- PostgreSQL (``--only postgres``, tools/bench_postgres.py): the same workloads for
  PostgresStorage, the original's PgStorage, pgqueuer, procrastinate and saq's Postgres
  queue on one throw-away server, statements per job from pg_stat_statements;
- raw limits: redis-py PING/GET round trips and a minimal LPUSH + BLMOVE + reply loop;
  for files, the cost of create+write+fsync+rename and of a directory fsync on the same disk.

Runs are interleaved (run 1 of every system, then run 2...) so that a change in
background load hits every system alike; the table shows medians.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tools.*

import redis

from tools.bench_cluster import CLUSTER_SYSTEMS, cluster_masters, commandstats, flush_masters
from tools.bench_common import Driver, DriverError
from tools.bench_node import ROOT, driver_command, missing, setup
from tools.bench_postgres import PG_FULL, PG_QUICK, PG_SYSTEMS, PostgresBench
from tools.bench_profile import cprofile_summary, pyspy_binary, pyspy_start, pyspy_summary
from tools.bench_record import add_profiles, write_run
from tools.bench_report import Results, render
from tools.clusters import ClusterProcess
from tools.postgres_server import PostgresServer
from tools.servers import ServerProcess

SYSTEMS = ("raw", "jobqueue", "valkey", "original", "arq", "saq", "file", "memory", "cluster", "postgres")
REDIS_SYSTEMS = ("raw", "jobqueue", "valkey", "original", "arq", "saq")
_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Sizes:
    jobs: int  # enqueue + drain
    latency: int  # sequential request/response
    waiters: int  # jobs over the 50 concurrent waiters
    file_jobs: int
    file_latency: int
    file_waiters: int
    memory_jobs: int = 100_000
    concurrency: int = 50
    inflight: int = 50


FULL = Sizes(jobs=20_000, latency=1_000, waiters=2_000, file_jobs=1_000, file_latency=100, file_waiters=300)
QUICK = Sizes(
    jobs=3_000, latency=200, waiters=400, file_jobs=500, file_latency=50, file_waiters=200, memory_jobs=20_000
)
# arq and saq drain at a few hundred jobs/s here: smaller workloads keep the run bounded (rates stay rates)
PEERS = Sizes(jobs=3_000, latency=200, waiters=300, file_jobs=0, file_latency=0, file_waiters=0)
PEERS_QUICK = Sizes(jobs=1_000, latency=100, waiters=200, file_jobs=0, file_latency=0, file_waiters=0)


class Bench:
    def __init__(
        self,
        sizes: Sizes,
        peers: Sizes,
        results: Results,
        server: ServerProcess | None,
        valkey: ServerProcess | None = None,
    ) -> None:
        self.sizes = sizes
        self.peers = peers
        self.results = results
        self.server = server
        self.valkey = valkey
        self.redis = redis.Redis(port=server.port) if server is not None else None

    # ------------------------------------------------------------------ plumbing

    def driver(self, system: str, mode: str, url: str, jobs: int, prefix: str, queue: str) -> Driver:
        argv, env = driver_command("jobqueue" if system in ("valkey", *CLUSTER_SYSTEMS) else system, mode)
        s = self.sizes
        argv += ["--url", url, "--jobs", str(jobs), "--concurrency", str(s.concurrency)]
        argv += ["--inflight", str(s.inflight), "--prefix", prefix, "--queue", queue]
        return Driver(f"{system} {mode}", argv, env=env)

    def run_once(
        self, system: str, mode: str, url: str, jobs: int, prefix: str, queue: str
    ) -> dict[str, Any]:
        """Start a driver, wait until it is ready, say go, return its result."""
        with self.driver(system, mode, url, jobs, prefix, queue) as driver:
            driver.expect("ready", _READY_TIMEOUT)
            driver.send("go")
            result: dict[str, Any] = driver.expect("result", max(120.0, jobs / 50))
            return result

    def flush(self) -> None:
        for server in (self.server, self.valkey):
            if server is not None:
                client = redis.Redis(port=server.port)
                client.flushall()
                client.config_resetstat()
                client.close()

    def commands(self, system: str = "jobqueue") -> Counter[str]:
        """Calls per command the server ran so far (Lua's included), not counting the bench's own."""
        server = self.valkey if system == "valkey" else self.server
        assert server is not None
        client = redis.Redis(port=server.port)
        stats: dict[str, Any] = client.info("commandstats")
        client.close()
        ignored = ("info", "config", "flushall")
        calls = Counter({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()})
        return Counter({k: n for k, n in calls.items() if not k.startswith(ignored)})

    # --------------------------------------------------------------- workloads

    def redis_system(self, system: str, run: int) -> None:
        server = self.valkey if system == "valkey" else self.server
        assert server is not None
        url, queue = server.url, f"bench-{system}"
        s = self.peers if system in ("arq", "saq") else self.sizes
        self.flush()
        if system == "raw":
            ping = self.run_once("raw", "ping", url, 2_000, "p", queue)
            self.results.add("raw", "ping_p50", ping["ping_p50"])
            self.results.add("raw", "get_p50", ping["get_p50"])
        before = self.commands(system)
        produced = self.run_once(system, "produce", url, s.jobs, f"d{run}-", queue)
        middle = self.commands(system)
        drained = self.run_once(system, "drain", url, s.jobs, f"d{run}-", queue)
        after = self.commands(system)
        self.results.add(system, "enqueue", produced["rate"])
        self.results.add(system, "drain", drained["rate"])
        for phase, delta in (("enqueue", middle - before), ("drain", after - middle)):
            self.results.add(system, f"cmds_{phase}", delta.total() / s.jobs)
            self.results.commands[f"{system} {phase}"] = {k: n / s.jobs for k, n in delta.items()}
        self.flush()
        self.requests(system, url, run, queue, s.latency, s.waiters)

    def requests(self, system: str, url: str, run: int, queue: str, latency: int, waiters: int) -> None:
        with self.driver(system, "serve", url, 0, "s", queue) as worker:
            worker.expect("ready", _READY_TIMEOUT)
            sequential = self.run_once(system, "latency", url, latency, f"l{run}-", queue)
            for q in ("p50", "p95", "p99"):
                self.results.add(system, f"rr_{q}", sequential[q])
            crowd = self.run_once(system, "waiters", url, waiters, f"w{run}-", queue)
            self.results.add(system, "waiters", crowd["rate"])
            self.results.add(system, "waiters_p50", crowd["p50"])
            worker.send("stop")

    def cluster_system(self, cluster: ClusterProcess, system: str, run: int) -> None:
        """jobqueue on a 3+3 cluster, one queue over 1 or 3 partitions (``cluster-p1``, ``cluster-p3``)."""
        url, queue = f"{cluster.url}?partitions={CLUSTER_SYSTEMS[system]}", f"bench-{system}"
        s = self.sizes
        masters = cluster_masters(cluster)
        flush_masters(masters)
        before = commandstats(masters)
        produced = self.run_once(system, "produce", url, s.jobs, f"d{run}-", queue)
        middle = commandstats(masters)
        drained = self.run_once(system, "drain", url, s.jobs, f"d{run}-", queue)
        after = commandstats(masters)
        self.results.add(system, "enqueue", produced["rate"])
        self.results.add(system, "drain", drained["rate"])
        for phase, delta in (("enqueue", middle - before), ("drain", after - middle)):
            self.results.add(system, f"cmds_{phase}", delta.total() / s.jobs)
            self.results.add(system, f"scripts_{phase}", (delta["evalsha"] + delta["eval"]) / s.jobs)
            self.results.commands[f"{system} {phase}"] = {k: n / s.jobs for k, n in delta.items()}
        flush_masters(masters)
        self.requests(system, url, run, queue, s.latency, s.waiters)

    def memory_system(self) -> None:
        """The core's own CPU cost per job: 100,000 no-op jobs drained from MemoryStorage in-process."""
        argv = [
            sys.executable,
            str(ROOT / "tools" / "bench_memory.py"),
            "--jobs",
            str(self.sizes.memory_jobs),
        ]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
        self.results.add("memory", "cpu_us_per_job", result["cpu_us_per_job"])
        self.results.add("memory", "drain", result["rate"])

    def file_systems(self, run: int, base: Path) -> None:
        s = self.sizes
        raw = self.run_once("file-raw", "fsync", str(base / f"raw-{run}"), 300, "f", "q")
        for key in ("write_ms", "dirsync_ms", "nosync_ms"):
            self.results.add("file-raw", key, raw[key])
        for system, durable in (("file-durable", "true"), ("file-fast", "false")):
            directory = base / f"{system}-{run}"
            shutil.rmtree(directory, ignore_errors=True)
            url = f"file://{directory}?durable={durable}"
            produced = self.run_once(system, "produce", url, s.file_jobs, f"d{run}-", "bench")
            drained = self.run_once(system, "drain", url, s.file_jobs, f"d{run}-", "bench")
            self.results.add(system, "enqueue", produced["rate"])
            self.results.add(system, "drain", drained["rate"])
            self.requests(system, url, run, "bench", s.file_latency, s.file_waiters)
            shutil.rmtree(directory, ignore_errors=True)

    def profile(self, directory: Path, url: str, jobs: int, tag: str) -> str:
        """One more jobqueue drain on ``url``, profiled: py-spy from outside when installed, else cProfile."""
        self.flush()
        self.run_once("jobqueue", "produce", url, jobs, "prof-", "bench-prof")
        argv, env = driver_command("jobqueue", "drain")
        argv += ["--url", url, "--jobs", str(jobs), "--queue", "bench-prof"]
        spy = pyspy_binary(ROOT)
        folded, prof = directory / f"drain-{tag}.folded", directory / f"drain-{tag}.prof"
        if spy is None:
            argv += ["--profile", str(prof)]
        with Driver(f"jobqueue drain on {tag} (profiled)", argv, env=env) as driver:
            driver.expect("ready", _READY_TIMEOUT)
            sampler = pyspy_start(spy, driver.pid, folded) if spy is not None else None
            time.sleep(1.0)  # py-spy attaches
            driver.send("go")
            result = driver.expect("result", 300.0)
        if sampler is not None:
            sampler.wait(timeout=30)
            head = f"drain on {tag}, {jobs} jobs, sampled by py-spy at 250 Hz: {result['rate']:.0f} jobs/s"
            return f"{head}; folded stacks in {folded}\n{pyspy_summary(folded)}"
        head = f"drain on {tag}, {jobs} jobs, under cProfile (slows it down): {result['rate']:.0f} jobs/s"
        return f"{head}; stats in {prof}\n{cprofile_summary(prof)}"

    def profile_latency(self, directory: Path, url: str, requests: int) -> str:
        """Sequential request/response with py-spy on the worker and on the client."""
        spy = pyspy_binary(ROOT)
        if spy is None:
            return "request/response profile needs py-spy (uv run python tools/bench.py --setup)"
        self.flush()
        out = []
        with self.driver("jobqueue", "serve", url, 0, "s", "bench-prof") as worker:
            worker.expect("ready", _READY_TIMEOUT)
            with self.driver("jobqueue", "latency", url, requests, "lp-", "bench-prof") as client:
                client.expect("ready", _READY_TIMEOUT)
                sides = {"worker": worker.pid, "client": client.pid}
                samplers = {
                    side: pyspy_start(spy, pid, directory / f"rr-{side}.folded")
                    for side, pid in sides.items()
                }
                time.sleep(1.0)  # py-spy attaches
                client.send("go")
                result = client.expect("result", 300.0)
            worker.send("stop")
        for side, sampler in samplers.items():
            sampler.wait(timeout=30)
            out.append(
                f"\nrequest/response, {side} process ({requests} sequential requests, p50 {result['p50']:.2f} ms):"
            )
            out.append(pyspy_summary(directory / f"rr-{side}.folded", 12))
        return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one run with smaller workloads (1-2 minutes)")
    parser.add_argument(
        "--only", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}"
    )
    parser.add_argument("--runs", type=int, help="runs per system (default 3, 1 with --quick)")
    parser.add_argument(
        "--setup",
        action="store_true",
        help="install the peers (arq, saq, pgqueuer, procrastinate) and the original into .bench/ and exit",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile one jobqueue drain (py-spy, else cProfile)"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks", help="where the JSON Lines and Markdown go"
    )
    parser.add_argument("--label", default="bench", help="the result files' name after the timestamp")
    args = parser.parse_args()
    if args.setup:
        setup()
        return 0
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := sorted(set(only) - set(SYSTEMS)):
        parser.error(f"--only: unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    sizes = QUICK if args.quick else FULL
    runs = args.runs or (1 if args.quick else 3)
    results = Results()
    redis_systems = [s for s in REDIS_SYSTEMS if s in only]
    for system in list(redis_systems):
        if (why := missing(system)) is not None:
            results.notes.append(f"skipped {why}")
            redis_systems.remove(system)
    base = ROOT / ".bench" / "files"
    base.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    server = ServerProcess.start_new("redis") if set(redis_systems) - {"valkey"} else None
    valkey = ServerProcess.start_new("valkey") if "valkey" in redis_systems else None
    cluster = ClusterProcess.start_new("redis") if "cluster" in only else None
    pg_systems = [s for s in PG_SYSTEMS if "postgres" in only]
    for system in list(pg_systems):
        if (why := missing(system)) is not None:
            results.notes.append(f"skipped {why}")
            pg_systems.remove(system)
    postgres = PostgresServer.start_new() if pg_systems else None
    try:
        peers = PEERS_QUICK if args.quick else PEERS
        bench = Bench(sizes, peers, results, server, valkey)
        pg = PostgresBench(bench, postgres, PG_QUICK if args.quick else PG_FULL) if postgres else None
        if pg is not None:
            results.notes.append(pg.describe())
        if redis_systems or {"file", "memory", "cluster"} & set(only):
            results.notes.append(
                f"workloads: {sizes.jobs:,} jobs enqueued then drained, {sizes.latency:,} sequential requests, "
                f"{sizes.waiters:,} requests over 50 waiters; arq and saq {peers.jobs:,} / {peers.latency:,} / "
                f"{peers.waiters:,}; FileStorage {sizes.file_jobs:,} / {sizes.file_latency:,} / {sizes.file_waiters:,}"
            )
        for run in range(runs):
            for system in redis_systems:
                _attempt(results, f"{system} run {run + 1}", lambda s=system, r=run: bench.redis_system(s, r))
                print(f"  {system} done at {time.monotonic() - started:.0f}s", file=sys.stderr)
            if "file" in only:
                _attempt(results, f"file run {run + 1}", lambda r=run: bench.file_systems(r, base))
                print(f"  file done at {time.monotonic() - started:.0f}s", file=sys.stderr)
            if "memory" in only:
                _attempt(results, f"memory run {run + 1}", bench.memory_system)
                print(f"  memory done at {time.monotonic() - started:.0f}s", file=sys.stderr)
            if cluster is not None:
                for system in CLUSTER_SYSTEMS:
                    work = lambda s=system, r=run: bench.cluster_system(cluster, s, r)  # noqa: E731  # bound per system
                    _attempt(results, f"{system} run {run + 1}", work)
                    print(f"  {system} done at {time.monotonic() - started:.0f}s", file=sys.stderr)
            if pg is not None:
                for system in pg_systems:
                    _attempt(results, f"{system} run {run + 1}", lambda s=system, r=run: pg.run(s, r))
                    print(f"  {system} done at {time.monotonic() - started:.0f}s", file=sys.stderr)
            print(f"run {run + 1}/{runs} done after {time.monotonic() - started:.0f}s", file=sys.stderr)
        command = "uv run python tools/bench.py" + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
        rendered = render(results, runs=runs, command=command)
        print(rendered)
        jsonl, markdown = write_run(
            results, command=command, table=rendered, directory=args.out, label=args.label
        )
        print(f"\nwritten: {jsonl} and {markdown}", file=sys.stderr)
        print(f"\n(total {time.monotonic() - started:.0f}s)", flush=True)
        if args.profile:
            targets = []
            if server is not None:
                targets.append((server.url, max(sizes.jobs, 10_000), "redis"))
            if "file" in only:
                fast = base / "profile"
                shutil.rmtree(fast, ignore_errors=True)
                targets.append((f"file://{fast}?durable=false", sizes.file_jobs, "file-nodurable"))
            profiles: list[str] = []
            for url, jobs, tag in targets:
                try:
                    profiles.append(bench.profile(ROOT / ".bench", url, jobs, tag))
                except DriverError as exc:
                    print(f"profiling {tag} failed: {exc}", file=sys.stderr)
            if server is not None:
                try:
                    profiles.append(bench.profile_latency(ROOT / ".bench", server.url, sizes.latency))
                except DriverError as exc:
                    print(f"profiling request/response failed: {exc}", file=sys.stderr)
            print("\n" + "\n\n".join(profiles), flush=True)
            add_profiles(markdown, profiles)
    finally:
        for process in (server, valkey, cluster, postgres):
            if process is not None:
                process.close()
    return 0


def _attempt(results: Results, what: str, work: Any) -> None:
    """Run one system's workloads; a failure becomes a note, the others still run."""
    try:
        work()
    except (DriverError, subprocess.SubprocessError) as exc:
        results.notes.append(f"{what} failed: {exc}")
        print(f"{what} failed: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
