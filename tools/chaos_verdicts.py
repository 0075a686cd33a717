"""Judging a chaos run by time: which fault explains each re-execution, which outcome each wait earned.

A job may run again only when something ended its earlier attempt: that
attempt's worker was killed or stopped while it ran, the server restarted or
the network was cut while it ran, or the reaper found its lease expired
between the two runs (a live worker starved of CPU: at-least-once allows it).
Each re-execution is matched to such an event *in time*, from the ledger and
the fault log; one with no match fails the run, since it means the storage
handed a job out twice.

A wait (``enqueue_and_wait``) may end with ``ok``; with ``JobNotFoundError``
or a plain ``JobQueueError`` only when the job's result had really expired
(its completion time plus ``result_ttl`` is not after the outcome); with a
``StorageError`` only when the result had expired or the server was
unreachable (a restart or a partition) while it waited. ``wrong-result`` and
anything else fail the run; a wait that timed out long after its job
completed is ``stranded`` and fails too.

Recovery from a fault is the time until every job it hit ran again or was
done; a fault that hit nothing is ``IDLE``, kept out of the medians.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

from tools.chaos_config import ChaosConfig
from tools.chaos_ledger import Execution, Fault, ProducerLog, ReaperEvent

__all__ = [
    "IDLE",
    "LongJobs",
    "Reruns",
    "Waits",
    "attribute_reruns",
    "judge_waits",
    "long_jobs",
    "recovery",
    "recovery_text",
    "stranded_waits",
]

# The completion time we know is when a worker logged it or the observer saw it, a little after the
# storage stored it (and started the result's TTL): this much earlier still counts as expired.
EXPIRY_SLACK = 1.5
# A run logs its start just after its claim returned: a claim answered before an outage may log after.
START_SLACK = 1.0
# A reaper logs a stall after its recover call returned: the requeue, and so the next claim
# and start, can come a moment before the line is written.
STALL_REPORT_SLACK = 0.5
_OUTAGES = ("restart-server", "partition", "failover")


@dataclass
class Reruns:
    """Re-executions by cause; ``unexplained`` ones fail the run."""

    causes: Counter[str] = field(default_factory=Counter)
    unexplained: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.causes.values()) + len(self.unexplained)


def _cause(
    run: Execution,
    after: Execution,
    faults: list[Fault],
    stalled: bool,
    requeued: float | None,
    done: float | None,
) -> str | None:
    """The event that ended attempt ``run`` before the job's next attempt ``after``, or None.

    A handler logs its start after the claim returned: a worker stopped in between logs
    it late, even after the next attempt (the storage's attempt number keeps the order).
    So the earlier attempt is known to have been claimed before both log times.
    """
    claimed_by = min(run.t, after.t)
    for fault in faults:
        end = fault.end if fault.end is not None else fault.t
        during = fault.t <= after.t and end + (START_SLACK if fault.kind in _OUTAGES else 0) >= claimed_by
        if fault.kind in ("kill-worker", "stop-worker") and fault.pid == run.pid and during:
            return fault.kind
        if fault.kind in _OUTAGES and during:
            return fault.kind
    if stalled:
        return "lease expired on a live worker"
    if requeued is not None and done is not None and done <= requeued <= after.t:
        return "enqueued again after its result expired"
    return None


def attribute_reruns(
    executions: list[Execution],
    faults: list[Fault],
    reaper_events: list[ReaperEvent],
    producers: ProducerLog,
    done: dict[str, float],
) -> Reruns:
    """Match every attempt of a job that was followed by another attempt to the event that ended it.

    Each stall the reaper reported (a lease it found expired) accounts for one
    re-delivery at most: the earliest one not yet used, before the next attempt started.
    """
    stalls: dict[str, list[float]] = {}
    for event in reaper_events:
        if event.event == "stalled" and event.job_id is not None:
            stalls.setdefault(event.job_id, []).append(event.t)
    by_job: dict[str, list[Execution]] = {}
    for execution in executions:
        by_job.setdefault(execution.job_id, []).append(execution)
    reruns = Reruns()
    for job_id, runs in by_job.items():
        runs.sort(key=lambda run: (run.attempt, run.t))
        pending = sorted(stalls.get(job_id, []))
        for run, after in itertools.pairwise(runs):
            stalled = bool(pending) and pending[0] <= after.t + STALL_REPORT_SLACK
            if stalled:
                pending.pop(0)
            requeued = producers.requeued.get(job_id)
            cause = _cause(run, after, faults, stalled, requeued, done.get(job_id))
            if cause is None:
                reruns.unexplained.append(
                    f"{job_id}: attempt {run.attempt} by pid {run.pid} at {run.t:.3f}, attempt"
                    f" {after.attempt} by pid {after.pid} at {after.t:.3f}, with no fault, outage or"
                    " lease expiry in between"
                )
            else:
                reruns.causes[cause] += 1
    return reruns


@dataclass
class Waits:
    """Outcomes of ``enqueue_and_wait`` that had a reason, and those that did not."""

    excused: Counter[str] = field(default_factory=Counter)
    unexplained: list[str] = field(default_factory=list)


def judge_waits(
    config: ChaosConfig, producers: ProducerLog, faults: list[Fault], done: dict[str, float]
) -> Waits:
    """Check every wait outcome other than ``ok`` and ``JobTimeoutError`` against the ledger and faults."""
    outages = [(f.t, f.end if f.end is not None else f.t) for f in faults if f.kind in _OUTAGES]
    waits = Waits()
    for job_id, outcome in sorted(producers.wait_outcomes.items()):
        if outcome in ("ok", "JobTimeoutError", "JobCancelledError") or outcome.startswith("foreign:"):
            continue  # fine, or judged by the stranded / hung checks
        ended = producers.wait_ended[job_id]
        started = producers.wait_started.get(job_id, ended)
        finished = done.get(job_id)
        expired = finished is not None and ended >= finished + config.result_ttl - EXPIRY_SLACK
        if outcome in ("JobNotFoundError", "JobQueueError") and expired:
            waits.excused[f"{outcome} (result expired)"] += 1
        elif outcome == "StorageError" and expired:
            waits.excused["StorageError (result expired)"] += 1
        elif outcome == "StorageError" and any(s <= ended and e + START_SLACK >= started for s, e in outages):
            waits.excused["StorageError (server unreachable)"] += 1
        else:
            when = "never completed" if finished is None else f"completed at {finished:.3f}"
            waits.unexplained.append(f"{job_id}: wait ended {outcome} at {ended:.3f}; the job {when}")
    return waits


@dataclass
class LongJobs:
    """Jobs that ran several visibility timeouts: lease renewal at work."""

    jobs: int = 0
    in_one_run: int = 0  # completed by their first execution: the lease was renewed throughout
    under_fault: int = 0  # executions during which some fault was injected


def long_jobs(config: ChaosConfig, executions: list[Execution], faults: list[Fault]) -> LongJobs:
    """Count the long jobs, those done in one run, and the long runs that overlapped a fault."""
    threshold = 2 * config.visibility_timeout
    runs: Counter[str] = Counter(execution.job_id for execution in executions)
    figures = LongJobs()
    seen: set[str] = set()
    for execution in executions:
        if execution.sleep < threshold:
            continue
        if execution.job_id not in seen:
            seen.add(execution.job_id)
            figures.jobs += 1
            figures.in_one_run += runs[execution.job_id] == 1
        stop = execution.t + execution.sleep
        if any(f.t <= stop and (f.end or f.t) >= execution.t for f in faults):
            figures.under_fault += 1
    return figures


IDLE = -1.0  # a fault that had nothing to recover: reported apart, kept out of the medians


def recovery(
    fault: Fault, done: dict[str, float], reaper_events: list[ReaperEvent], starts: dict[str, list[float]]
) -> tuple[float | None, str]:
    """Seconds until the work the fault hit was done again (``IDLE``: nothing to recover; None: never)."""
    if fault.kind == "kill-reaper" and not fault.was_leader:
        return IDLE, "a follower: the leader kept its lock"
    if fault.kind == "kill-reaper":
        after = [e.t for e in reaper_events if e.event == "leader" and e.t > fault.t and e.pid != fault.pid]
        return (min(after) - fault.t if after else None), "the other reaper took the lock"
    # a job the fault hit is recovered once it runs again (re-delivered) or its result is stored:
    # the time it then takes to run (seconds for the long jobs) is the handler's, not the recovery's
    ends: list[float] = []
    for job_id in fault.held:
        finished = done.get(job_id)
        if finished is None:
            return None, f"{len(fault.held)} jobs in flight, not all completed"
        if finished < fault.t:
            continue  # it had completed: its worker died between storing the result and logging it
        again = [t for t in starts.get(job_id, []) if t > fault.t]
        ends.append(min([finished, *again]))
    what = f"{len(fault.held)} jobs in flight running again or completed"
    if fault.kind in _OUTAGES:
        assert fault.end is not None
        resumed = [t for t in done.values() if t > fault.end]
        if resumed:
            ends.append(min(resumed))
        what += f", server {'cut off' if fault.kind == 'partition' else 'down'} {fault.end - fault.t:.1f}s"
    if not ends:
        return IDLE, "nothing in flight"
    return max(ends) - fault.t, what


def recovery_text(seconds: float | None) -> str:
    """A ``recovery`` time as the report shows it."""
    if seconds is None:
        return "NOT RECOVERED"
    return "-" if seconds == IDLE else f"{seconds:.1f}s"


STRANDED_AFTER = 7.0  # the waiters re-read waited jobs every 5 s: a done job must be seen by then


def stranded_waits(producers: ProducerLog, done: dict[str, float]) -> list[str]:
    """Waits that timed out though their job had completed well before (a lost ``done`` event).

    ``JobNotFoundError`` is not counted: it says truly that the result expired
    before the waiter could read it (the outcomes row shows how often).
    """
    stranded = []
    for job_id, outcome in producers.wait_outcomes.items():
        finished = done.get(job_id)
        ended = producers.wait_ended.get(job_id)
        late = finished is not None and ended is not None and ended - finished > STRANDED_AFTER
        if outcome == "JobCancelledError":  # the run cancels nothing: the waiter misread an expired result
            stranded.append(f"{job_id}: completed at {finished}, its waiter raised JobCancelledError")
        elif outcome == "JobTimeoutError" and late:
            assert finished is not None and ended is not None
            stranded.append(
                f"{job_id}: completed at {finished:.3f}, its waiter timed out {ended - finished:.1f}s later"
            )
    return sorted(stranded)
