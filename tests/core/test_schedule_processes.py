"""Several worker processes share one schedule on a storage; one is SIGKILLed: every tick ran once."""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import BACKENDS

PROC = Path(__file__).with_name("schedule_proc.py")
PERIOD_MS = 500


SHARED = [param for param in BACKENDS if param.id != "memory"]  # memory lives in one process


def read(log: Path) -> list[tuple[str, str, int]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [(what, job_id, int(pid)) for what, job_id, pid in (line.split(" ") for line in lines)]


def wait_for(condition: object, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def tick(job_id: str) -> int:
    return int(job_id.rsplit(":", 1)[1])


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", SHARED, indirect=True)
def test_each_tick_runs_once_across_processes_with_one_killed(storage_url: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, str(PROC), storage_url, str(log)])
        procs.append(proc)
        wait_for(lambda: ("started", "-", proc.pid) in read(log), f"process {proc.pid} to start")
        return proc

    def ran() -> set[str]:
        return {job_id for what, job_id, _ in read(log) if what == "ran"}

    try:
        victim = start()
        for _ in range(2):
            start()
        wait_for(lambda: len(ran()) >= 6, "6 ticks")
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        wait_for(lambda: len(ran()) >= 10, "4 more ticks")
        start()  # a worker joins late
        wait_for(lambda: len(ran()) >= 20, "20 ticks")
        # every tick queued so far has run (the killed worker's job too, after its lease)
        queued_now = {job_id for what, job_id, _ in read(log) if what == "queued"}
        wait_for(lambda: queued_now <= ran(), "the queued ticks to run")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(60)
    assert [proc.returncode for proc in procs] == [-signal.SIGKILL, 0, 0, 0]

    events = read(log)
    queued = collections.Counter(job_id for what, job_id, _ in events if what == "queued")
    assert queued, events
    assert max(queued.values()) == 1, [job_id for job_id, n in queued.items() if n > 1]
    ticks = sorted(tick(job_id) for job_id in queued)
    assert ticks == list(range(ticks[0], ticks[-1] + PERIOD_MS, PERIOD_MS)), "a tick was never enqueued"
    assert len(ticks) >= 20

    runs = collections.defaultdict(list)
    for what, job_id, pid in events:
        if what == "ran":
            runs[job_id].append(pid)
    assert set(runs) <= set(queued)
    for job_id, pids in runs.items():
        # at-least-once delivery: only a job the killed worker was running may run a second time
        if len(pids) > 1:
            assert len(pids) == 2 and pids[0] == victim.pid, (job_id, pids)
    assert set(queued) - set(runs) <= {f"schedule:beat:{t}" for t in ticks[-4:]}  # queued as all stopped
