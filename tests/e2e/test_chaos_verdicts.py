"""The chaos run's judgement, on hand-made ledgers: re-executions and wait outcomes are explained by time.

And the network jail of the partition fault, on a real server: cut, unreachable, restored, cleaned up.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from tests.server_support import jail_or_skip, server_or_skip
from tools.chaos_config import ChaosConfig
from tools.chaos_ledger import Execution, Fault, ProducerLog, ReaperEvent
from tools.chaos_netns import NetworkJail, clean_leftovers
from tools.chaos_verdicts import IDLE, attribute_reruns, judge_waits, long_jobs, recovery_text

CONFIG = ChaosConfig(backend="redis", url="redis://127.0.0.1:1/0?prefix=x", duration=1, seed=1)


def run(pid: int, t: float, sleep: float = 0.1, attempt: int = 0) -> Execution:
    return Execution("job", pid, attempt or (1 if pid == 1 else 2), t, sleep)


def reruns(executions: list[Execution], faults: list[Fault], stalls: tuple[float, ...] = ()) -> list[str]:
    events = [ReaperEvent(t, 9, "stalled", "job") for t in stalls]
    return attribute_reruns(executions, faults, events, ProducerLog(), {"job": 100.0}).unexplained


def test_a_rerun_after_its_worker_was_killed_during_the_first_run_is_explained() -> None:
    assert reruns([run(1, 10.0), run(2, 13.0)], [Fault("kill-worker", 10.5, 1)]) == []


def test_a_kill_of_the_worker_before_or_after_the_run_explains_nothing() -> None:
    before = Fault("kill-worker", 5.0, 1)  # the pid ran the job later: an earlier kill cannot explain it
    after = Fault("kill-worker", 20.0, 1)
    assert len(reruns([run(1, 10.0), run(2, 13.0)], [before, after])) == 1


def test_a_kill_of_another_worker_explains_nothing() -> None:
    assert len(reruns([run(1, 10.0), run(2, 13.0)], [Fault("kill-worker", 11.0, 3)])) == 1


def test_a_stop_overlapping_the_run_and_a_partition_during_it_are_explanations() -> None:
    stop = Fault("stop-worker", 9.0, 1, end=12.0)
    assert reruns([run(1, 10.0), run(2, 13.0)], [stop]) == []
    cut = Fault("partition", 10.2, None, end=13.0)
    assert reruns([run(1, 10.0), run(2, 14.0)], [cut]) == []
    assert len(reruns([run(1, 10.0), run(2, 14.0)], [Fault("partition", 15.0, None, end=18.0)])) == 1


def test_a_lease_expiry_explains_one_rerun_and_only_before_the_next_attempt() -> None:
    assert reruns([run(1, 10.0), run(2, 13.0)], [], stalls=(12.5,)) == []
    # logged just after the next attempt started: the reaper writes its line after its call returned
    assert reruns([run(1, 10.0), run(2, 13.0)], [], stalls=(13.2,)) == []
    assert len(reruns([run(1, 10.0), run(2, 13.0)], [], stalls=(14.0,))) == 1
    three = [run(1, 10.0), run(2, 13.0), run(3, 16.0, attempt=3)]
    assert len(reruns(three, [], stalls=(12.5,))) == 1


def test_an_attempt_logged_late_by_a_stopped_worker_is_ordered_by_its_attempt_number() -> None:
    # claimed by pid 1, stopped before its handler logged; re-delivered to pid 2, which finished;
    # pid 1 resumed and logged attempt 1 after attempt 2
    late = [run(2, 59.4, attempt=2), run(1, 60.8, attempt=1)]
    assert reruns(late, [Fault("stop-worker", 57.4, 1, end=60.5)], stalls=(59.3,)) == []
    assert len(reruns(late, [Fault("stop-worker", 57.4, 3, end=60.5)])) == 1


def waits(outcome: str, ended: float, faults: list[Fault], done: float | None = 100.0) -> list[str]:
    log = ProducerLog(wait_started={"job": 95.0}, wait_outcomes={"job": outcome}, wait_ended={"job": ended})
    return judge_waits(CONFIG, log, faults, {} if done is None else {"job": done}).unexplained


def test_job_not_found_is_excused_only_once_the_result_expired() -> None:
    assert waits("JobNotFoundError", 100.0 + CONFIG.result_ttl, []) == []
    assert len(waits("JobNotFoundError", 101.0, [])) == 1
    assert len(waits("JobNotFoundError", 200.0, [], done=None)) == 1


def test_a_storage_error_needs_an_expired_result_or_an_outage_during_the_wait() -> None:
    assert waits("StorageError", 99.0, [Fault("restart-server", 97.0, 1, end=98.0)]) == []
    assert len(waits("StorageError", 99.0, [Fault("restart-server", 50.0, 1, end=51.0)])) == 1
    assert len(waits("wrong-result", 99.0, [])) == 1


def test_long_jobs_are_counted_with_the_faults_they_lived_through() -> None:
    executions = [run(1, 10.0, sleep=7.0), Execution("short", 2, 1, 30.0, 0.2)]
    figures = long_jobs(CONFIG, executions, [Fault("kill-reaper", 12.0, 5)])
    assert (figures.jobs, figures.in_one_run, figures.under_fault) == (1, 1, 1)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _eventually_reachable(host: str, port: int, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while not _reachable(host, port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.redis
def test_the_network_jail_cuts_and_restores_the_link_and_leaves_nothing() -> None:
    from tools.servers import ServerProcess

    server_or_skip("redis")
    jail = jail_or_skip()  # the chaos run skips its partition fault on such a machine too
    server = ServerProcess("redis", host=jail.ns_address, launcher=jail.launcher)
    try:
        server.start()
        assert _reachable(jail.ns_address, server.port)
        jail.cut()
        assert not _reachable(jail.ns_address, server.port)
        jail.restore()
        # the link comes back up asynchronously (carrier, neighbour entry): wait, with a limit
        assert _eventually_reachable(jail.ns_address, server.port, within=15.0)
    finally:
        jail.destroy()
        try:
            listing = subprocess.run(
                ["ip", "netns", "list"], capture_output=True, text=True, check=True
            ).stdout
            assert jail.namespace not in listing
            links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
            assert jail.host_link not in links
            assert not server.running  # killed with its namespace
        finally:
            server.close()


def test_leftovers_of_a_dead_supervisor_are_removed_and_live_ones_kept() -> None:
    if subprocess.run(["ip", "netns", "list"], capture_output=True, check=False).returncode != 0:
        pytest.skip("iproute2 cannot list network namespaces here")
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid names a supervisor that is gone
    orphan, mine = f"jqchaos-{dead.pid}", NetworkJail()
    if subprocess.run(["ip", "netns", "add", orphan], capture_output=True, check=False).returncode != 0:
        pytest.skip("network namespaces cannot be created here")
    try:
        mine.create()
        removed = clean_leftovers()
        listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        assert orphan in removed
        assert orphan not in listing
        assert mine.namespace in listing  # this process is alive: its namespace stays
    finally:
        subprocess.run(["ip", "netns", "del", orphan], capture_output=True, check=False)
        mine.destroy()


def test_the_report_shows_an_unrecovered_fault_instead_of_crashing_on_it() -> None:
    assert recovery_text(None) == "NOT RECOVERED"
    assert recovery_text(IDLE) == "-"
    assert recovery_text(2.345) == "2.3s"
