"""What a chaos run checks: every accepted job seen ``completed`` through the storage, and the figures.

``build_report`` crosses the ledger, what the observer read (``chaos_observer``)
and the fault log, and prints one table; the run passes only if every row does.
"""

from __future__ import annotations

import functools
import json
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field

from tools.chaos_config import ChaosConfig
from tools.chaos_ledger import (
    Completion,
    Execution,
    Fault,
    ProducerLog,
    ReaperEvent,
)
from tools.chaos_observer import Observer
from tools.chaos_verdicts import (
    IDLE,
    attribute_reruns,
    judge_waits,
    long_jobs,
    recovery,
    recovery_text,
    stranded_waits,
)

__all__ = ["Evidence", "Report", "Row", "build_report"]


@dataclass
class Row:
    """One line of the final table."""

    name: str
    value: str
    ok: bool | None = None  # None: a figure, not a check


@dataclass
class Report:
    """The final table and the details behind failed rows."""

    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(row.ok is not False for row in self.rows)

    def add(self, name: str, value: object, ok: bool | None = None) -> None:
        self.rows.append(Row(name, str(value), ok))

    def to_json(self, meta: dict[str, object] | None = None) -> str:
        """The rows as JSON (for the CI test and ``docs/chaos/``), with ``meta`` about the run."""
        body = {"passed": self.passed, "rows": [asdict(row) for row in self.rows], "details": self.details}
        return json.dumps({**(meta or {}), **body}, indent=1)

    def render(self) -> str:
        width = max(len(row.name) for row in self.rows)
        lines = [f"{'check':<{width}}  {'result':<6}  value", "-" * (width + 40)]
        for row in self.rows:
            mark = "" if row.ok is None else ("PASS" if row.ok else "FAIL")
            lines.append(f"{row.name:<{width}}  {mark:<6}  {row.value}")
        lines += self.details
        lines.append("chaos run: " + ("PASSED" if self.passed else "FAILED"))
        return "\n".join(lines)


@dataclass
class Evidence:
    """Everything the final checks read."""

    config: ChaosConfig
    producers: ProducerLog
    observer: Observer
    executions: list[Execution]
    completions: list[Completion]
    reaper_events: list[ReaperEvent]
    faults: list[Fault]
    elapsed: float
    size: tuple[int, int, int, list[str]]  # baseline, before counts(), final, leftover names
    producer_exits: list[int | None]
    empty_worker_dirs: int = 0
    crashed: list[str] = field(default_factory=list)

    @functools.cached_property
    def starts(self) -> dict[str, list[float]]:
        """Job id -> the start times of its executions."""
        starts: dict[str, list[float]] = {}
        for execution in self.executions:
            starts.setdefault(execution.job_id, []).append(execution.t)
        return starts


def _add_executions(report: Report, evidence: Evidence, done: dict[str, float]) -> list[str]:
    """Rows on re-executions, waits and long jobs; returns the detail lines of the failures."""
    producers, config = evidence.producers, evidence.config
    counts = Counter(execution.job_id for execution in evidence.executions)
    histogram = Counter(min(counts.get(job_id, 0), 3) for job_id in producers.accepted)
    report.add("executions per job (0/1/2/3+)", "/".join(str(histogram.get(n, 0)) for n in range(4)))
    reruns = attribute_reruns(evidence.executions, evidence.faults, evidence.reaper_events, producers, done)
    report.add(
        "re-executions, each matched in time to the fault that ended the earlier run",
        ", ".join(f"{cause} {n}" for cause, n in sorted(reruns.causes.items())) or "none",
    )
    report.add(
        "re-executions not explained by a fault or an expired lease",
        len(reruns.unexplained),
        not reruns.unexplained,
    )
    long = long_jobs(config, evidence.executions, evidence.faults)
    low, high = config.long_sleep
    report.add(
        f"long jobs ({low:g}-{high:g}s, lease {config.visibility_timeout:g}s): jobs / done in one run /"
        " runs overlapping a fault",
        f"{long.jobs} / {long.in_one_run} / {long.under_fault}",
        long.jobs > 0,
    )
    outcomes = producers.outcome_counts()
    report.add("enqueue_and_wait outcomes", ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    wrong = outcomes.get("wrong-result", 0)
    report.add("enqueue_and_wait returned a wrong result", wrong, wrong == 0)
    waits = judge_waits(config, producers, evidence.faults, done)
    if waits.excused:
        report.add(
            "enqueue_and_wait errors with a reason",
            ", ".join(f"{k} {v}" for k, v in sorted(waits.excused.items())),
        )
    report.add(
        "enqueue_and_wait errors without a reason (result not expired, server reachable)",
        len(waits.unexplained),
        not waits.unexplained,
    )
    stranded = stranded_waits(producers, done)
    report.add("enqueue_and_wait stranded after its job completed", len(stranded), not stranded)
    hung = producers.hung_waits
    report.add("enqueue_and_wait neither returned nor raised a library error", len(hung), not hung)
    details = [f"  {line}" for line in reruns.unexplained[:10]]
    details += [f"  wait: {line}" for line in waits.unexplained[:10]]
    return details + [f"  stranded: {line}" for line in stranded[:10]]


def _add_faults(report: Report, evidence: Evidence, done: dict[str, float]) -> None:
    """Rows on the faults and the time the run took to recover from each."""
    config = evidence.config
    kinds = Counter(fault.kind for fault in evidence.faults)
    report.add("faults injected", ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    if config.partition:
        report.add("partition fault skipped", config.partition)
    cuts = [fault.end - fault.t for fault in evidence.faults if fault.kind == "partition" and fault.end]
    if cuts:  # the premise of the partition fault: every lease held when the link went down expired
        longer = sum(cut > config.visibility_timeout for cut in cuts)
        report.add(
            f"partitions longer than the lease ({config.visibility_timeout:g}s), shortest cut",
            f"{longer}/{len(cuts)}, {min(cuts):.1f}s",
            longer == len(cuts),
        )
    recovered = True
    times: dict[str, list[float]] = {}
    idle: Counter[str] = Counter()
    for fault in evidence.faults:
        seconds, what = recovery(fault, done, evidence.reaper_events, evidence.starts)
        recovered &= seconds is not None
        if seconds == IDLE:
            idle[fault.kind] += 1
        elif seconds is not None:
            times.setdefault(fault.kind, []).append(seconds)
        report.details.append(
            f"  fault {fault.kind:<15} t+{fault.t - evidence.faults[0].t:6.1f}s pid {fault.pid}:"
            f" recovered in {recovery_text(seconds)} ({what})"
        )
    for kind in sorted(times):
        report.add(
            f"time to recover, median / worst ({kind})",
            f"{statistics.median(times[kind]):.1f}s / {max(times[kind]):.1f}s (n={len(times[kind])})",
        )
    if idle:
        report.add(
            "faults with nothing to recover (not in the medians)",
            ", ".join(f"{k} {v}" for k, v in sorted(idle.items())),
        )
    report.add("every fault recovered", "yes" if recovered else "no", recovered)


def build_report(evidence: Evidence) -> Report:
    """Cross every record of the run into the final table."""
    report = Report()
    producers, observer, config = evidence.producers, evidence.observer, evidence.config
    accepted = set(producers.accepted)
    completed = accepted & observer.completed.keys()
    done: dict[str, float] = {}
    for completion in evidence.completions:
        done.setdefault(completion.job_id, completion.t)
    for job_id, seen in observer.completed.items():  # completions no worker could log
        done[job_id] = min(done.get(job_id, seen), seen)
    undrained = sorted(job_id for job_id in accepted - completed if job_id in observer.pending)
    lost = sorted(job_id for job_id in accepted - completed - set(undrained) if job_id not in done)
    unverified = sorted(job_id for job_id in accepted - completed - set(undrained) if job_id in done)
    report.add("backend", config.backend)
    report.add("run time (s)", f"{evidence.elapsed:.0f}")
    report.add("accepted jobs", len(accepted))
    report.add("completed jobs (read through the storage)", len(completed), completed == accepted)
    report.add("lost jobs (record gone, never completed)", len(lost), not lost)
    if undrained:
        report.add(
            f"still queued or running after the {config.drain_timeout:g}s drain", len(undrained), False
        )
    if unverified or observer.failed:
        report.add(
            "completed but expired before read / failed", f"{len(unverified)} / {len(observer.failed)}", False
        )
    report.add("throughput (jobs/s)", f"{len(completed) / max(evidence.elapsed, 1):.1f}")
    details = _add_executions(report, evidence, done)
    ended = producers.ended == len(evidence.producer_exits) and all(
        code == 0 for code in evidence.producer_exits
    )
    report.add("role processes that died by themselves", len(evidence.crashed), not evidence.crashed)
    if evidence.crashed:
        report.details.append("  died by themselves (see their logs): " + ", ".join(evidence.crashed))
    report.add("producers ended cleanly", f"{producers.ended}/{len(evidence.producer_exits)}", ended)
    if producers.given_up:
        report.add("ids the producers gave up enqueueing", len(producers.given_up))
    report.add(
        "observer: longest poll gap (s) / storage errors",
        f"{observer.max_gap:.1f} / {observer.errors}",
        observer.max_gap < config.result_ttl,
    )
    _add_faults(report, evidence, done)
    baseline, raw, final, leftovers = evidence.size
    report.add(
        "storage size after result TTL (baseline -> idle -> after a dashboard read)",
        f"{baseline} -> {raw} -> {final}",
        final == baseline,
    )
    if final != baseline:
        report.details.append("  left in storage: " + ", ".join(leftovers[:20]))
    if config.backend == "file":
        dirs = evidence.empty_worker_dirs
        report.add("empty processing/<worker> dirs left after the run", dirs, dirs == 0)
    counts = Counter(execution.job_id for execution in evidence.executions)
    for job_id in (lost + unverified + undrained)[:10]:
        report.details.append(f"  not completed: {job_id} (executions: {counts.get(job_id, 0)})")
    report.details += details
    return report
