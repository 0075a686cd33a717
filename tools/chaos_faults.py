"""The processes of a chaos run and the faults injected into them.

``Cluster`` starts role processes (``tools/chaos_roles.py``) and ends them;
``FaultInjector`` picks a fault at random intervals: SIGKILL of a worker that
holds jobs (a replacement starts at once), SIGSTOP of a worker for longer
than the visibility timeout then SIGCONT, SIGKILL of the leading reaper (a
replacement starts), and on Redis/Valkey/PostgreSQL a crash of the server
(SIGKILL; ``pg_ctl stop -m immediate``) and a restart on the same port, and
a network partition (the link to the server's namespace down for longer
than the lease, see ``chaos_netns``). Each fault is logged with the jobs in
flight at that moment, so the checks can measure recovery.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from tools.chaos_config import ChaosConfig, RunFiles, append_line
from tools.chaos_ledger import Fault, LedgerTail, read_reaper_events
from tools.chaos_netns import NetworkJail
from tools.clusters import ClusterProcess, key_slot

__all__ = ["FAULT_KINDS", "Cluster", "FaultInjector", "Proc", "Server"]

ROLES_SCRIPT = Path(__file__).resolve().with_name("chaos_roles.py")

FAULT_KINDS = ("kill-worker", "stop-worker", "kill-reaper", "restart-server", "partition", "failover")


class Server(Protocol):
    """What the restart fault needs of a server (``tools.servers``' ``ServerProcess`` or ``PostgresServer``)."""

    @property
    def binary(self) -> str | Path: ...

    @property
    def pid(self) -> int | None: ...

    def kill(self) -> None:
        """Crash the server: SIGKILL, or ``pg_ctl stop -m immediate``."""

    def start(self) -> None:
        """Start it again on the same port and data; return once it accepts connections."""

    def close(self) -> None:
        """Stop it for good and remove its files."""


@dataclass
class Proc:
    """One role process."""

    role: str
    index: int
    popen: subprocess.Popen[bytes]
    stopped: bool = False
    killed: bool = False  # by the injector
    replaced: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


class Cluster:
    """Starts, kills and stops the role processes of one run."""

    def __init__(self, files: RunFiles) -> None:
        self.files = files
        self.procs: list[Proc] = []
        self._next: dict[str, int] = {}
        (files.root / "logs").mkdir(exist_ok=True)

    def spawn(self, role: str) -> Proc:
        """Start one more process of ``role``."""
        index = self._next.get(role, 0)
        self._next[role] = index + 1
        with self.files.log(role, index).open("wb") as log:
            popen = subprocess.Popen(
                [sys.executable, str(ROLES_SCRIPT), role, str(self.files.root), str(index)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(role, index, popen)
        self.procs.append(proc)
        return proc

    def live(self, role: str) -> list[Proc]:
        """The processes of ``role`` still running."""
        return [proc for proc in self.procs if proc.role == role and proc.alive]

    async def kill(self, proc: Proc) -> None:
        """SIGKILL and reap."""
        proc.killed = True
        if proc.alive:
            os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.popen.wait)

    async def stop_role(self, role: str, timeout: float) -> list[Proc]:
        """SIGTERM every live process of ``role`` (SIGCONT first); SIGKILL those still there after ``timeout``.

        Returns the processes that had to be killed.
        """
        procs = self.live(role)
        for proc in procs:
            os.kill(proc.pid, signal.SIGCONT)
            os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        killed = []
        for proc in procs:
            try:
                await asyncio.to_thread(proc.popen.wait, max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed.append(proc)
                await self.kill(proc)
        return killed

    def crashed(self) -> list[Proc]:
        """Processes that died by themselves (neither SIGKILLed by the injector nor ended cleanly)."""
        return [proc for proc in self.procs if not proc.killed and proc.popen.poll() not in (None, 0)]

    def replace_crashed(self) -> list[Proc]:
        """Start a replacement for every crashed worker or reaper (a process manager would)."""
        crashed = [proc for proc in self.crashed() if proc.role != "producer" and not proc.replaced]
        for proc in crashed:
            proc.replaced = True
            self.spawn(proc.role)
        return crashed

    def kill_everything(self) -> None:
        """Last resort on the way out: no process of the run survives it."""
        for proc in self.procs:
            if proc.alive:
                os.kill(proc.pid, signal.SIGKILL)
                proc.popen.wait()

    def exit_codes(self, role: str) -> list[int | None]:
        """Exit codes of every process of ``role`` (SIGKILLed ones: -9)."""
        return [proc.popen.poll() for proc in self.procs if proc.role == role]


class FaultInjector:
    """Injects one random fault every few seconds until told to stop."""

    def __init__(
        self,
        config: ChaosConfig,
        files: RunFiles,
        cluster: Cluster,
        server: Server | None,
        rng: random.Random,
        jail: NetworkJail | None = None,
        redis_cluster: ClusterProcess | None = None,
    ) -> None:
        self.redis_cluster = redis_cluster
        self.config = config
        self.files = files
        self.cluster = cluster
        self.server = server
        self.jail = jail
        self.rng = rng
        self.tail = LedgerTail(files)
        self.faults: list[Fault] = []
        self._conts: list[asyncio.Task[None]] = []

    def kinds(self) -> list[str]:
        """The fault kinds this run can inject: no server, no restart; no namespace, no partition."""
        unavailable = {"restart-server"} if self.server is None else set()
        if self.jail is None:
            unavailable.add("partition")
        if self.redis_cluster is None:
            unavailable.add("failover")
        return [kind for kind in FAULT_KINDS if kind not in unavailable]

    async def run(self, until: float) -> None:
        """Inject faults until ``time.monotonic()`` reaches ``until``; every kind comes once per round.

        The first round is always finished, so even a short run has every kind of fault.
        """
        await asyncio.sleep(self.config.first_fault)
        plan: list[str] = []
        rounds = 0
        while time.monotonic() < until or (plan and rounds == 1):
            if not plan:
                plan = self.kinds()
                self.rng.shuffle(plan)
                rounds += 1
            self.cluster.replace_crashed()
            await getattr(self, plan.pop().replace("-", "_"))()
            await asyncio.sleep(self.rng.uniform(*self.config.fault_interval))

    async def finish(self) -> None:
        """Wait for every SIGSTOPped worker to get its SIGCONT."""
        await asyncio.gather(*self._conts)

    def _log(self, fault: Fault) -> None:
        self.faults.append(fault)
        append_line(self.files.faults, fault.to_json())

    async def _pick_worker(self) -> Proc | None:
        """A worker that runs jobs right now (waiting up to a few seconds for one), else any worker."""
        deadline = time.monotonic() + 3.0
        while True:
            candidates = [proc for proc in self.cluster.live("worker") if not proc.stopped]
            busy = [proc for proc in candidates if self.tail.held_by(proc.pid)]
            if busy or time.monotonic() > deadline:
                pool = busy or candidates
                return self.rng.choice(pool) if pool else None
            await asyncio.sleep(0.02)

    async def kill_worker(self) -> None:
        victim = await self._pick_worker()
        if victim is None:
            return
        held = self.tail.held_by(victim.pid)
        fault = Fault("kill-worker", time.time(), victim.pid, held)
        await self.cluster.kill(victim)
        self.cluster.spawn("worker")
        self._log(fault)

    async def stop_worker(self) -> None:
        victim = await self._pick_worker()
        if victim is None:
            return
        held = self.tail.held_by(victim.pid)
        fault = Fault("stop-worker", time.time(), victim.pid, held)
        os.kill(victim.pid, signal.SIGSTOP)
        victim.stopped = True
        pause = self.config.visibility_timeout + self.rng.uniform(*self.config.stop_extra)
        self._conts.append(asyncio.create_task(self._cont(victim, fault, pause)))

    async def _cont(self, victim: Proc, fault: Fault, pause: float) -> None:
        await asyncio.sleep(pause)
        if victim.alive:
            os.kill(victim.pid, signal.SIGCONT)
        victim.stopped = False
        fault.end = time.time()
        self._log(fault)

    def leader_pid(self) -> int | None:
        """The reaper that took the lock last and has not reported losing it."""
        leader: int | None = None
        for event in read_reaper_events(self.files):
            if event.event == "leader":
                leader = event.pid
            elif event.event == "lost" and event.pid == leader:
                leader = None
        return leader

    async def kill_reaper(self) -> None:
        reapers = self.cluster.live("reaper")
        if not reapers:
            return
        deadline = time.monotonic() + 2 * self.config.lock_ttl
        while True:  # right after a takeover the new leader may not have logged it yet
            leader = self.leader_pid()
            leading = [proc for proc in reapers if proc.pid == leader]
            if leading or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        victim = leading[0] if leading else self.rng.choice(reapers)
        fault = Fault("kill-reaper", time.time(), victim.pid, was_leader=bool(leading))
        await self.cluster.kill(victim)
        self.cluster.spawn("reaper")
        self._log(fault)

    async def restart_server(self) -> None:
        server = self.server
        assert server is not None
        fault = Fault("restart-server", time.time(), server.pid, self.tail.held_by_all())
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(self.rng.uniform(*self.config.server_downtime))
        await asyncio.to_thread(server.start)
        fault.end = time.time()
        self._log(fault)

    async def partition(self) -> None:
        """Cut the server's link while jobs are in flight, for longer than the lease, then heal it."""
        jail = self.jail
        assert jail is not None
        deadline = time.monotonic() + 3.0
        while not self.tail.held_by_all() and time.monotonic() < deadline:  # noqa: ASYNC110  # polls files
            await asyncio.sleep(0.02)
        fault = Fault("partition", time.time(), None, self.tail.held_by_all())
        try:
            await asyncio.to_thread(jail.cut)
            await asyncio.sleep(
                self.config.visibility_timeout + self.rng.uniform(*self.config.partition_extra)
            )
        finally:
            await asyncio.to_thread(jail.restore)
        fault.end = time.time()
        self._log(fault)

    async def failover(self) -> None:
        """SIGKILL the master that owns the queue's slot; its replica takes over; the old one rejoins."""
        redis_cluster = self.redis_cluster
        assert redis_cluster is not None
        slot = key_slot(queue_tag(self.config.url))
        old = await asyncio.to_thread(redis_cluster.master_of, slot)
        fault = Fault("failover", time.time(), old.pid, self.tail.held_by_all())
        await asyncio.to_thread(redis_cluster.kill_master, slot)
        await asyncio.to_thread(redis_cluster.wait_promoted, slot, old)
        await asyncio.to_thread(old.start)  # back as the replica of the promoted node
        await asyncio.to_thread(redis_cluster.wait_ready)
        fault.end = time.time()
        self._log(fault)


def queue_tag(url: str) -> str:
    """A key of the chaos queue (the default namespace under the URL's prefix), for its slot."""
    prefix = parse_qs(urlsplit(url).query)["prefix"][0]
    return f"{prefix}:{{default}}:ready"
