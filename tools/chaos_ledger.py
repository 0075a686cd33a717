"""Reading what the processes of a chaos run wrote: executions, completions, producer outcomes.

``LedgerTail`` follows the ledger while the run goes on, so the fault
injector knows which jobs a worker holds at the moment it kills it; the
``read_*`` functions parse the finished files for the final checks.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools.chaos_config import RunFiles

__all__ = [
    "Completion",
    "Execution",
    "Fault",
    "LedgerTail",
    "ProducerLog",
    "ReaperEvent",
    "read_completions",
    "read_faults",
    "read_ledger",
    "read_producers",
    "read_reaper_events",
]


@dataclass(frozen=True)
class Execution:
    """One start of a handler."""

    job_id: str
    pid: int
    attempt: int
    t: float
    sleep: float  # how long the handler runs


@dataclass(frozen=True)
class Completion:
    """A result the storage accepted from worker ``pid``."""

    job_id: str
    pid: int
    t: float


@dataclass(frozen=True)
class ReaperEvent:
    """``leader``, ``lost`` or ``stalled`` (with the job id)."""

    t: float
    pid: int
    event: str
    job_id: str | None


@dataclass
class Fault:
    """One injected fault. ``held``: the jobs in flight on the victim (or everywhere) at ``t``."""

    kind: str  # kill-worker, stop-worker, kill-reaper, restart-server, partition, failover
    t: float
    pid: int | None
    held: list[str] = field(default_factory=list)
    end: float | None = None  # SIGCONT, server back, link up
    was_leader: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass
class ProducerLog:
    """Everything the producers recorded."""

    accepted: dict[str, float] = field(default_factory=dict)
    given_up: set[str] = field(default_factory=set)
    wait_started: dict[str, float] = field(default_factory=dict)
    wait_outcomes: dict[str, str] = field(default_factory=dict)
    wait_ended: dict[str, float] = field(default_factory=dict)
    requeued: dict[str, float] = field(default_factory=dict)  # enqueued anew after a failed wait
    ended: int = 0  # producers that wrote END

    @property
    def hung_waits(self) -> list[str]:
        """Waits that neither returned nor raised a library error."""
        stuck = [job_id for job_id in self.wait_started if job_id not in self.wait_outcomes]
        foreign = [job_id for job_id, outcome in self.wait_outcomes.items() if outcome.startswith("foreign:")]
        return sorted(stuck + foreign)

    def outcome_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for outcome in self.wait_outcomes.values():
            counts[outcome] += 1
        return dict(counts)


def _lines(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[
        : text.rfind("\n") + 1
    ]  # a process killed mid-write cannot leave half a line, but be safe
    return [line.split() for line in complete.splitlines() if line.strip()]


def read_ledger(files: RunFiles) -> list[Execution]:
    """Every handler start, in file order."""
    return [Execution(p[0], int(p[1]), int(p[2]), float(p[3]), float(p[4])) for p in _lines(files.ledger)]


def read_completions(files: RunFiles) -> list[Completion]:
    """Every stored completion, in file order."""
    return [Completion(p[0], int(p[1]), float(p[2])) for p in _lines(files.completions)]


def read_reaper_events(files: RunFiles) -> list[ReaperEvent]:
    """Leadership changes and stalled jobs, in file order."""
    return [
        ReaperEvent(float(p[0]), int(p[1]), p[2], p[3] if len(p) > 3 else None)
        for p in _lines(files.reaper_events)
    ]


def read_faults(files: RunFiles) -> list[Fault]:
    """The fault log, by start time (a SIGSTOP is logged when it ends)."""
    if not files.faults.exists():
        return []
    faults = [Fault(**json.loads(line)) for line in files.faults.read_text().splitlines() if line.strip()]
    return sorted(faults, key=lambda fault: fault.t)


def read_producers(files: RunFiles) -> ProducerLog:
    """Merge every producer's file."""
    log = ProducerLog()
    for path in files.producers():
        for parts in _lines(path):
            kind = parts[0]
            if kind == "A":
                log.accepted.setdefault(parts[1], float(parts[-1]))
                if parts[2] == "enqueue:queued" and parts[1] in log.wait_outcomes:
                    log.requeued[parts[1]] = float(parts[-1])
            elif kind == "X":
                log.given_up.add(parts[1])
            elif kind == "W+":
                log.wait_started[parts[1]] = float(parts[-1])
            elif kind == "W-":
                log.wait_outcomes[parts[1]] = parts[2]
                log.wait_ended[parts[1]] = float(parts[-1])
            elif kind == "END":
                log.ended += 1
    log.given_up -= log.accepted.keys()
    return log


# An execution with no logged completion after this long has ended unlogged: its worker died after
# storing the result, or the server applied a completion whose reply a server kill cut off.
_STALE = 30.0


class LedgerTail:
    """Follows the ledger and the completions file: which jobs each worker pid is running now."""

    def __init__(self, files: RunFiles) -> None:
        self._files = files
        self._offsets = {files.ledger: 0, files.completions: 0}
        self.open: dict[int, dict[str, float]] = defaultdict(dict)  # pid -> job id -> start
        self.done: dict[str, float] = {}  # job id -> first stored completion
        self._running: dict[str, set[int]] = defaultdict(set)  # job id -> pids running it

    def _read_new(self, path: Path) -> list[list[str]]:
        if not path.exists():
            return []
        with path.open("rb") as stream:
            stream.seek(self._offsets[path])
            data = stream.read()
        end = data.rfind(b"\n") + 1
        self._offsets[path] += end
        return [line.split() for line in data[:end].decode().splitlines() if line.strip()]

    def update(self) -> None:
        """Read what was appended since the last call."""
        for parts in self._read_new(self._files.ledger):
            job_id, pid, t = parts[0], int(parts[1]), float(parts[3])
            if job_id not in self.done:
                self.open[pid][job_id] = t
                self._running[job_id].add(pid)
        for parts in self._read_new(self._files.completions):
            job_id, t = parts[0], float(parts[2])
            self.done.setdefault(job_id, t)
            for pid in self._running.pop(job_id, set()):
                self.open[pid].pop(job_id, None)

    def held_by(self, pid: int) -> list[str]:
        """Jobs ``pid`` started and nobody completed yet."""
        self.update()
        return sorted(job_id for job_id, t in self.open.get(pid, {}).items() if t > time.time() - _STALE)

    def held_by_all(self) -> list[str]:
        """Jobs running anywhere now."""
        self.update()
        horizon = time.time() - _STALE
        return sorted({job_id for jobs in self.open.values() for job_id, t in jobs.items() if t > horizon})
