"""The benchmark's table: medians of the runs, ratios to the raw limit, the original and the peers."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["FILE_WRITES", "Results", "render"]

REDIS_SYSTEMS = ("raw", "jobqueue", "valkey", "original", "arq", "saq")
LABELS = {
    "raw": "raw loop",
    "jobqueue": "jobqueue",
    "valkey": "jobqueue on Valkey",
    "original": "original",
    "arq": "arq",
    "saq": "saq",
}

# Durable file operations one job costs in FileStorage (jobqueue_file/_space.py): enqueue writes the
# record and fsyncs the queue and jobs directories; claim rewrites the record; finish rewrites it and
# fsyncs the jobs directory. (atomic writes, directory fsyncs) per phase:
FILE_WRITES = {"enqueue": (1, 2), "drain": (2, 1)}


@dataclass
class Results:
    """Every figure of every run: ``values[system][metric]`` is one value per run."""

    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    commands: dict[str, dict[str, float]] = field(default_factory=dict)  # "system phase" -> per job, last run

    def add(self, system: str, metric: str, value: float) -> None:
        self.values.setdefault(system, {}).setdefault(metric, []).append(value)

    def get(self, system: str, metric: str) -> float | None:
        """The median over runs, or None when never measured."""
        runs = self.values.get(system, {}).get(metric)
        return statistics.median(runs) if runs else None

    def spread(self, system: str, metric: str) -> tuple[float, float] | None:
        runs = self.values.get(system, {}).get(metric)
        return (min(runs), max(runs)) if runs and len(runs) > 1 else None


@dataclass(frozen=True)
class Row:
    label: str
    metric: str
    digits: int
    higher_is_better: bool


WORKLOAD_ROWS = (
    Row("enqueue, jobs/s (50 in flight)", "enqueue", 0, True),
    Row("drain, jobs/s (1 worker, concurrency 50)", "drain", 0, True),
    Row("request/response p50, ms (sequential)", "rr_p50", 2, False),
    Row("request/response p95, ms", "rr_p95", 2, False),
    Row("request/response p99, ms", "rr_p99", 2, False),
    Row("50 waiters, req/s", "waiters", 0, True),
    Row("50 waiters p50, ms", "waiters_p50", 1, False),
)
"""The rows every system has: the workloads of bench_common."""

REDIS_ROWS = (
    *WORKLOAD_ROWS,
    Row("Redis commands per job: enqueue", "cmds_enqueue", 1, False),
    Row("Redis commands per job: drain", "cmds_drain", 1, False),
)

FILE_ROWS = WORKLOAD_ROWS[:-1]  # no waiters p50 for files


PG_SYSTEMS = ("pg-jobqueue", "pg-original", "pgqueuer", "procrastinate", "pg-saq")
PG_LABELS = {
    "pg-jobqueue": "jobqueue",
    "pg-original": "original (PgStorage)",
    "pgqueuer": "pgqueuer",
    "procrastinate": "procrastinate",
    "pg-saq": "saq (Postgres)",
}
PG_ROWS = (
    *WORKLOAD_ROWS,
    Row("statements per job: enqueue", "stmts_enqueue", 1, False),
    Row("statements per job: drain", "stmts_drain", 1, False),
    Row("… with those in functions: enqueue", "stmts_all_enqueue", 1, False),
    Row("… with those in functions: drain", "stmts_all_drain", 1, False),
)


def fmt(value: float | None, digits: int) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:,.{digits}f}"


def ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0 or math.isnan(ours) or math.isnan(theirs):
        return "—"
    return f"{ours / theirs:.2f}x"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table (readable as plain text too)."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|" + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1) for i, w in enumerate(widths)) + "|"
    )
    return [line(header), rule, *(line(row) for row in rows)]


def redis_table(results: Results) -> list[str]:
    systems = [s for s in REDIS_SYSTEMS if s in results.values]
    others = [s for s in systems if s not in ("jobqueue", "valkey")]
    header = ["metric", *(LABELS[s] for s in systems), *(f"jq / {LABELS[s]}" for s in others)]
    rows = []
    for row in REDIS_ROWS:
        values = {s: results.get(s, row.metric) for s in systems}
        if all(v is None for v in values.values()):
            continue
        cells = [row.label, *(fmt(values[s], row.digits) for s in systems)]
        cells += [ratio(values.get("jobqueue"), values[s]) for s in others]
        rows.append(cells)
    lines = table(header, rows)
    ping, get = results.get("raw", "ping_p50"), results.get("raw", "get_p50")
    if ping is not None and get is not None:
        lines.append("")
        lines.append(f"One redis-py round trip on this server: PING p50 {ping:.3f} ms, GET p50 {get:.3f} ms.")
    return lines


def pg_table(results: Results) -> list[str]:
    """PostgresStorage against the original's PgStorage and the Python peers; a stalled drain shows "stall"."""
    systems = [s for s in PG_SYSTEMS if s in results.values]
    others = [s for s in systems if s != "pg-jobqueue"]
    header = ["metric", *(PG_LABELS[s] for s in systems), *(f"jq / {PG_LABELS[s]}" for s in others)]
    rows = []
    for row in PG_ROWS:
        values = {s: results.get(s, row.metric) for s in systems}

        cells = [row.label, *(_pg_cell(results, s, row, values[s]) for s in systems)]
        cells += [ratio(values.get("pg-jobqueue"), values[s]) for s in others]
        rows.append(cells)
    return table(header, rows)


def _pg_cell(results: Results, system: str, row: Row, value: float | None) -> str:
    if (
        row.metric in ("drain", "enqueue", "waiters")
        and value is None
        and _stalled(results, system, row.metric)
    ):
        return "stall"
    return fmt(value, row.digits)


def _stalled(results: Results, system: str, phase: str = "drain") -> bool:
    return any(results.values.get(system, {}).get(f"{phase}_stall", []))


def file_table(results: Results) -> list[str]:
    write = results.get("file-raw", "write_ms")
    dirsync = results.get("file-raw", "dirsync_ms")
    nosync = results.get("file-raw", "nosync_ms")

    def limit(metric: str, durable: bool) -> float | None:
        if write is None or dirsync is None or nosync is None:
            return None
        per_write = write if durable else nosync
        syncs = dirsync if durable else 0.0
        phases: dict[str, float] = {
            phase: writes * per_write + dirs * syncs for phase, (writes, dirs) in FILE_WRITES.items()
        }
        whole = phases["enqueue"] + phases["drain"]
        by_metric: dict[str, Callable[[], float]] = {
            "enqueue": lambda: 1000 / phases["enqueue"],
            "drain": lambda: 1000 / phases["drain"],
            "rr_p50": lambda: whole,
        }
        return by_metric[metric]() if metric in by_metric else None

    header = ["metric", "durable", "raw fsync limit", "ratio", "durable=False", "raw, no fsync", "ratio"]
    rows = []
    for row in FILE_ROWS:
        cells = [row.label]
        for system, durable in (("file-durable", True), ("file-fast", False)):
            ours, raw = results.get(system, row.metric), limit(row.metric, durable)
            cells += [fmt(ours, row.digits), fmt(raw, row.digits), ratio(ours, raw)]
        rows.append(cells)
    lines = table(header, rows)
    if write is not None and dirsync is not None and nosync is not None:
        lines += [
            "",
            f"Same disk, same run: one create+write+fsync+rename {write:.3f} ms, one directory fsync "
            f"{dirsync:.3f} ms, create+write+rename without fsync {nosync:.3f} ms. A job costs "
            "3 atomic record writes (enqueue, claim, finish) and 3 directory fsyncs "
            "(queue and jobs dirs at enqueue, jobs dir at finish); the limit rows are those costs, "
            "done one after the other (enqueue: 1 write + 2 dir fsyncs; drain: 2 writes + 1 dir fsync; "
            "request/response: all six).",
        ]
    return lines


def goals(results: Results) -> list[str]:
    def get(system: str, metric: str) -> float | None:
        return results.get(system, metric)

    checks: list[tuple[str, float | None, float | None, Callable[[float, float], bool], str]] = [
        ("drain >= 1.5x the original", get("jobqueue", "drain"), get("original", "drain"),
         lambda a, b: a >= 1.5 * b, "x"),
        ("enqueue >= 1x the original", get("jobqueue", "enqueue"), get("original", "enqueue"),
         lambda a, b: a >= b, "x"),
        ("Redis commands per job (enqueue + drain) <= 11", _sum(get("jobqueue", "cmds_enqueue"),
         get("jobqueue", "cmds_drain")), 11.0, lambda a, b: a <= b, "x"),
        ("Valkey drain within 10% of Redis", get("valkey", "drain"), get("jobqueue", "drain"),
         lambda a, b: a >= 0.9 * b, "x"),
        ("request/response p50 <= 0.5x the original", get("jobqueue", "rr_p50"), get("original", "rr_p50"),
         lambda a, b: a <= 0.5 * b, "x"),
        ("request/response p50 <= 1.5x the minimal loop", get("jobqueue", "rr_p50"), get("raw", "rr_p50"),
         lambda a, b: a <= 1.5 * b, "x"),
        ("50 waiters >= 1.5x the original", get("jobqueue", "waiters"), get("original", "waiters"),
         lambda a, b: a >= 1.5 * b, "x"),
        ("file drain (durable) >= 1,000 jobs/s", get("file-durable", "drain"), 1000.0,
         lambda a, b: a >= b, "of 1,000/s: "),
        ("file drain (durable=False) >= 3x durable", get("file-fast", "drain"), get("file-durable", "drain"),
         lambda a, b: a >= 3 * b, "x"),
        ("file request/response p50 <= 3 ms", get("file-durable", "rr_p50"), 3.0, lambda a, b: a <= b, "x"),
        ("memory: <= 30 us of CPU per no-op job", get("memory", "cpu_us_per_job"), 30.0,
         lambda a, b: a <= b, "x"),
    ]  # fmt: skip
    # a partial run (--only postgres) lists only the goals of what it ran
    ran = {
        "redis": any(s in results.values for s in REDIS_SYSTEMS),
        "file": any(s in results.values for s in ("file-durable", "file-fast")),
        "memory": "memory" in results.values,
    }
    groups = ["redis"] * 7 + ["file"] * 3 + ["memory"]
    checks = [check for check, group in zip(checks, groups, strict=True) if ran[group]]
    jq_drain, jq_rr = get("pg-jobqueue", "drain"), get("pg-jobqueue", "rr_p50")
    for system in PG_SYSTEMS[1:]:
        if system not in results.values:
            continue
        theirs = get(system, "drain")
        if theirs is None and _stalled(results, system):
            theirs = 0.0  # a stalled drain never finishes: any finished drain is ahead of it
        checks.append((f"Postgres drain ahead of {PG_LABELS[system]}", jq_drain, theirs,
                       lambda a, b: a > b, "x"))  # fmt: skip
        if system not in NO_RR:
            checks.append((f"Postgres request/response p50 ahead of {PG_LABELS[system]}", jq_rr,
                           get(system, "rr_p50"), lambda a, b: a < b, "x"))  # fmt: skip
    checks.append(("Postgres request/response p50 <= 3 ms", jq_rr, 3.0, lambda a, b: a <= b, "x"))
    if "pg-jobqueue" in results.values:
        checks.append(("Postgres drain never stalls", 0.0 if not _stalled(results, "pg-jobqueue") else 1.0,
                       1.0, lambda a, b: a < b, "stall"))  # fmt: skip
    lines = []
    for label, ours, theirs, ok, unit in checks:
        if ours is None or theirs is None:
            lines.append(f"- {label}: not measured")
            continue
        verdict = "met" if ok(ours, theirs) else "MISSED"
        if unit == "stall":
            lines.append(f"- {label}: {'stalled' if ours else 'no stall'} — {verdict}")
        elif theirs == 0:
            lines.append(f"- {label}: {ours:,.0f} against a stall — {verdict}")
        else:
            lines.append(f"- {label}: {ours / theirs:.2f}x — {verdict}")
    return lines


def _sum(*values: float | None) -> float | None:
    return None if any(v is None for v in values) else sum(v for v in values if v is not None)


# Peers with no request/response (they store no job results): their "—" is not a missing measurement.
NO_RR = ("pgqueuer", "procrastinate")


def render(results: Results, *, runs: int, command: str) -> str:
    out = [f"Command: `{command}` — medians of {runs} run(s).", ""]
    if any(s in results.values for s in REDIS_SYSTEMS):
        out += ["Redis (one redis-server started by the bench, loopback):", "", *redis_table(results), ""]
    redis_calls = {k: v for k, v in results.commands.items() if k.split()[0] not in PG_SYSTEMS}
    pg_calls = {k: v for k, v in results.commands.items() if k.split()[0] in PG_SYSTEMS}
    if redis_calls:
        out += ["Redis commands per job by command (last run; Lua's included):", ""]
        for what, calls in redis_calls.items():
            listed = ", ".join(
                f"{k} {v:.2f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1]) if v >= 0.01
            )
            out.append(f"- {what}: {listed}")
        out.append("")
    if any(s in results.values for s in ("cluster-p1", "cluster-p3")):
        from tools.bench_cluster import cluster_table  # bench_cluster imports this module

        out += ["Redis cluster, 3 masters and 3 replicas started by the bench, one worker process:", ""]
        out += [*cluster_table(results), ""]
    if any(s in results.values for s in PG_SYSTEMS):
        out += ["PostgreSQL (one server started by the bench, loopback; a database per system):", ""]
        out += [*pg_table(results), ""]
        out += [
            "pgqueuer and procrastinate store no job results, so they cannot answer request/response (—). "
            "Statements per job: top-level statements (round trips; BEGIN/COMMIT and a pool's reset "
            "statements included) in pg_stat_statements, "
            "divided by the job count; with those in functions: pg_stat_statements.track = all.",
            "",
        ]
    if pg_calls:
        out += ["PostgreSQL statements per job by statement (last run; top 6 per phase):", ""]
        for what, calls in pg_calls.items():
            top = sorted(calls.items(), key=lambda kv: -kv[1])[:6]
            out.append(f"- {what}: " + "; ".join(f"`{k}` {v:.2f}" for k, v in top if v >= 0.01))
        out.append("")
    if "memory" in results.values:
        cpu, rate = results.get("memory", "cpu_us_per_job"), results.get("memory", "drain")
        out += [
            f"MemoryStorage, one process, no-op jobs at concurrency 50: {fmt(cpu, 1)} us of CPU per job "
            f"({fmt(rate, 0)} jobs/s).",
            "",
        ]
    if "file-durable" in results.values or "file-fast" in results.values:
        out += ["FileStorage (same machine, same disk):", "", *file_table(results), ""]
    out += [
        "Ratios are jobqueue ÷ other (above 1 is better for rates, below 1 for latencies and "
        "command counts).",
        "",
        "Goals:",
        *goals(results),
    ]
    if results.notes:
        out += ["", "Notes:", *(f"- {note}" for note in results.notes)]
    return "\n".join(out)
