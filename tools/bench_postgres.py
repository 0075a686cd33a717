"""The PostgreSQL part of the benchmark: jobqueue's PostgresStorage against the original's PgStorage and the peers.

Everything runs on one throw-away server (tools/postgres_server.py ``PostgresServer``), each
system in a database of its own created for the run (so that no system sees another's
tables or leftovers), with the Redis workloads: enqueue, drain at concurrency 50,
sequential request/response, 50 waiters. Statements per job come from
``pg_stat_statements`` (``track = all``, reset before each phase, summed over the
system's database) when the server loaded it: top-level ones (round trips; BEGIN,
COMMIT and a pool's reset statements included) and all (those run inside functions too).

A drain that does not finish within its deadline is a *stall*: the original's
PgStorage leaves jobs unclaimed with hundreds of jobs queued at concurrency 50. It
is reported as such (``drain_stall`` 1, no rate), not as a crash. An enqueue that
overstays is an ``enqueue_stall`` too (the original's PgStorage deadlocks its own
pool with 10 or more enqueues in flight); its drain is then measured on jobs
enqueued 5 at a time.
"""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg

from tools.bench_common import Driver, DriverError
from tools.bench_node import ORIGINAL_VERSION, VENV_PYTHON, driver_command
from tools.bench_pg_peers import NO_RESULTS
from tools.postgres_server import PostgresServer

if TYPE_CHECKING:
    from tools.bench import Bench

__all__ = ["PG_FULL", "PG_QUICK", "PG_SYSTEMS", "PgSizes", "PostgresBench"]

PG_SYSTEMS = ("pg-jobqueue", "pg-original", "pgqueuer", "procrastinate", "pg-saq")
_READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class PgSizes:
    jobs: int  # enqueue + drain
    latency: int  # sequential request/response
    waiters: int  # jobs over the 50 concurrent waiters
    drain_timeout: float  # seconds; a drain still running then is a stall


PG_FULL = PgSizes(jobs=1_000, latency=300, waiters=500, drain_timeout=100.0)
PG_QUICK = PgSizes(jobs=500, latency=100, waiters=200, drain_timeout=45.0)


class PostgresBench:
    """Runs one Postgres system's workloads through ``bench``'s drivers and records them in its results."""

    def __init__(self, bench: Bench, server: PostgresServer, sizes: PgSizes) -> None:
        self.bench = bench
        self.server = server
        self.sizes = sizes
        self.statements = asyncio.run(self._sql("SELECT count(*) FROM pg_available_extensions"
                                                " WHERE name = 'pg_stat_statements'"))  # fmt: skip
        if self.statements:
            try:
                asyncio.run(self._sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
                # statements inside functions too (the top-level ones are the round trips)
                asyncio.run(self._sql("ALTER SYSTEM SET pg_stat_statements.track = 'all'"))
                asyncio.run(self._sql("SELECT pg_reload_conf()"))
            except asyncpg.PostgresError:  # not in shared_preload_libraries
                self.statements = 0

    def describe(self) -> str:
        """The note on the workloads, the stall deadline, the versions and how statements are counted."""
        s = self.sizes
        counted = (
            "statements per job from pg_stat_statements"
            if self.statements
            else "pg_stat_statements is not installed: statements per job not counted"
        )
        return (
            f"PostgreSQL workloads (every system alike): {s.jobs:,} jobs enqueued then drained "
            f"(an enqueue, drain or waiters run still going after {s.drain_timeout:.0f} s is a stall), "
            f"{s.latency:,} sequential requests, {s.waiters:,} requests over 50 waiters; "
            f"peers: {self.peer_versions()}; {counted}"
        )

    def peer_versions(self) -> str:
        """The versions of the peers (in .bench/venv) and of the original, for the notes."""
        script = (
            "from importlib.metadata import version as v; "
            "print(', '.join(f'{p} {v(p)}' for p in ('pgqueuer', 'procrastinate', 'saq', 'psycopg', 'asyncpg')))"
        )
        try:
            out = subprocess.run([str(VENV_PYTHON), "-c", script], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return f"@platformatic/job-queue {ORIGINAL_VERSION}"
        return f"{out.stdout.strip()}, @platformatic/job-queue {ORIGINAL_VERSION} (PgStorage, node-postgres)"

    async def _sql(self, query: str, *args: Any, database: str = "postgres") -> Any:
        conn = await asyncpg.connect(self.url(database))
        try:
            return await conn.fetchval(query, *args)
        finally:
            await conn.close()

    def url(self, database: str) -> str:
        return self.server.url.rsplit("/", 1)[0] + f"/{database}"

    def database(self, name: str) -> str:
        """A fresh database called ``name``; its URL."""
        asyncio.run(self._sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(self._sql(f'CREATE DATABASE "{name}"'))
        return self.url(name)

    def counted(self, database: str) -> list[tuple[str, bool, int]] | None:
        """(query, top-level, calls) run in ``database`` since the last reset (then resets), or None without
        pg_stat_statements."""
        if not self.statements:
            return None
        query = (
            "SELECT query, toplevel, calls FROM pg_stat_statements"
            " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)"
        )
        rows = asyncio.run(self._fetch(query, database))
        asyncio.run(self._sql("SELECT pg_stat_statements_reset()"))
        return [(r["query"], r["toplevel"], r["calls"]) for r in rows]

    async def _fetch(self, query: str, *args: Any) -> list[Any]:
        conn = await asyncpg.connect(self.url("postgres"))
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    def record(self, system: str, phase: str, database: str) -> None:
        """Statements per job of ``phase``: top-level (round trips), all (functions' included), by statement."""
        rows = self.counted(database)
        if rows is None:
            return
        jobs, results = self.sizes.jobs, self.bench.results
        results.add(system, f"stmts_{phase}", sum(n for _, top, n in rows if top) / jobs)
        results.add(system, f"stmts_all_{phase}", sum(n for _, _, n in rows) / jobs)
        by_query: dict[str, float] = {}
        for text, top, n in rows:
            label = ("" if top else "(nested) ") + " ".join(text.split())[:70]
            by_query[label] = by_query.get(label, 0.0) + n / jobs
        results.commands[f"{system} {phase}"] = by_query

    def run(self, system: str, run: int) -> None:
        results, s = self.bench.results, self.sizes
        name = f"bench_{system.replace('-', '_')}_{run + 1}"
        url = self.database(name)
        queue = f"bench-{system}"
        self.counted(name)  # reset
        inflight = self.bench.sizes.inflight
        try:
            produced = self.once(system, "produce", url, queue, f"d{run}-", inflight)
        except DriverError as exc:
            if "no 'result' within" not in str(exc):
                raise
            # The original's PgStorage holds a pooled client while it asks the pool (10 clients) for another:
            # 10 enqueues in flight deadlock it. Still measure its drain, on jobs enqueued 5 at a time.
            results.add(system, "enqueue_stall", 1.0)
            url = self.database(f"{name}_5")
            name = f"{name}_5"
            inflight = 5
            produced = self.once(system, "produce", url, queue, f"d{run}-", inflight)
            results.notes.append(
                f"{system} run {run + 1}: STALL — enqueueing {s.jobs:,} jobs {self.bench.sizes.inflight} "
                f"in flight did not finish within {s.drain_timeout:.0f} s; with {inflight} in flight: "
                f"{produced['rate']:,.0f} jobs/s (the drain below ran on those)"
            )
        else:
            results.add(system, "enqueue_stall", 0.0)
            results.add(system, "enqueue", produced["rate"])
        self.record(system, "enqueue", name)
        try:
            drained = self.once(system, "drain", url, queue, f"d{run}-", inflight)
        except DriverError as exc:
            if "no 'result' within" not in str(exc):
                raise
            results.add(system, "drain_stall", 1.0)
            results.notes.append(
                f"{system} run {run + 1}: STALL — the drain of {s.jobs:,} queued jobs at concurrency "
                f"{self.bench.sizes.concurrency} did not finish within {s.drain_timeout:.0f} s"
            )
        else:
            results.add(system, "drain_stall", 0.0)
            results.add(system, "drain", drained["rate"])
            self.record(system, "drain", name)
        if system in ("pgqueuer", "procrastinate"):
            if run == 0:
                results.notes.append(
                    f"{system}: request/response and waiters not measured: {NO_RESULTS[system]}"
                )
            return
        rr = self.database(f"{name}_rr")  # the stalled jobs of a drain stay behind in the other one
        self.requests(system, rr, queue, run)

    def requests(self, system: str, url: str, queue: str, run: int) -> None:
        """Sequential request/response, then 50 waiters; waiters that overstay are a stall (the original's
        50 concurrent enqueueAndWait calls exhaust its pool of 10 as its enqueues do)."""
        results, s = self.bench.results, self.sizes
        with self.bench.driver(system, "serve", url, 0, "s", queue) as worker:
            worker.expect("ready", _READY_TIMEOUT)
            sequential = self.once(system, "latency", url, queue, f"l{run}-", 1, s.latency)
            for q in ("p50", "p95", "p99"):
                results.add(system, f"rr_{q}", sequential[q])
            try:
                crowd = self.once(
                    system, "waiters", url, queue, f"w{run}-", self.bench.sizes.inflight, s.waiters
                )
            except DriverError as exc:
                if "no 'result' within" not in str(exc):
                    raise
                results.add(system, "waiters_stall", 1.0)
                results.notes.append(
                    f"{system} run {run + 1}: STALL — {s.waiters:,} requests over 50 waiters did not "
                    f"finish within {s.drain_timeout:.0f} s"
                )
            else:
                results.add(system, "waiters_stall", 0.0)
                results.add(system, "waiters", crowd["rate"])
                results.add(system, "waiters_p50", crowd["p50"])
            worker.send("stop")

    def once(
        self, system: str, mode: str, url: str, queue: str, prefix: str, inflight: int, jobs: int = 0
    ) -> dict[str, Any]:
        """One run of a mode; a DriverError saying "no 'result' within" when it overstays its deadline."""
        argv, env = driver_command(system, mode)
        argv += ["--url", url, "--jobs", str(jobs or self.sizes.jobs), "--prefix", prefix, "--queue", queue]
        argv += ["--concurrency", str(self.bench.sizes.concurrency), "--inflight", str(inflight)]
        with Driver(f"{system} {mode}", argv, env=env) as driver:
            driver.expect("ready", _READY_TIMEOUT)
            driver.send("go")
            result: dict[str, Any] = driver.expect("result", self.sizes.drain_timeout)
            return result
