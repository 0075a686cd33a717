"""Throw-away ``redis-server`` / ``valkey-server`` processes for tests, benchmarks and chaos runs.

A ``ServerProcess`` runs one server on a free loopback port in its own temp
directory (AOF on when asked). It can be SIGKILLed and started again on the
same port with the same data directory, which is how the restart tests
simulate a crash. Synchronous on purpose: async callers wrap the slow calls
in ``asyncio.to_thread``.

    with ServerProcess.start_new("redis", aof=True) as server:
        print(server.url)      # redis://127.0.0.1:PORT/0
        server.kill()          # SIGKILL, like a crash
        server.start()         # same port, same data
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Container, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import redis
from redis import crc

__all__ = [
    "BINARIES",
    "CLIS",
    "ClusterProcess",
    "ServerKind",
    "ServerProcess",
    "find_binary",
    "find_cli",
    "free_port",
    "key_slot",
]

ServerKind = Literal["redis", "valkey"]

BINARIES: dict[ServerKind, str] = {"redis": "redis-server", "valkey": "valkey-server"}
CLIS: dict[ServerKind, str] = {"redis": "redis-cli", "valkey": "valkey-cli"}

_READY_TIMEOUT = 15.0


def find_binary(kind: ServerKind) -> str | None:
    """Path of the server binary for ``kind``, or None when it is not installed."""
    return shutil.which(BINARIES[kind])


def find_cli(kind: ServerKind) -> str | None:
    """Path of the command-line client for ``kind`` (it creates clusters), or None."""
    return shutil.which(CLIS[kind])


def free_port(exclude: Container[int] = ()) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (and not in ``exclude``)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in exclude:
            return port


class ServerProcess:
    """One server process on a fixed port and data directory; restartable."""

    def __init__(
        self,
        kind: ServerKind,
        *,
        aof: bool = False,
        port: int | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        binary = find_binary(kind)
        if binary is None:
            raise FileNotFoundError(f"{BINARIES[kind]} is not installed (see tools/install-servers.sh)")
        self.kind = kind
        self.binary = binary
        self.aof = aof
        self.port = port or free_port()
        self.extra_args = tuple(extra_args)
        self._tmp = tempfile.TemporaryDirectory(prefix=f"jobqueue-{kind}-")
        self.dir = Path(self._tmp.name)
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start_new(cls, kind: ServerKind, *, aof: bool = False) -> Self:
        """Create a server and start it."""
        server = cls(kind, aof=aof)
        server.start()
        return server

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id, while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self) -> None:
        """Start the server (again) on this port and data directory; wait until it answers PING."""
        if self.running:
            raise RuntimeError(f"{self.kind} server on port {self.port} is already running")
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes" if self.aof else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--protected-mode", "no",
            "--logfile", str(self.dir / "server.log"),
            *self.extra_args,
        ]  # fmt: skip
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.kind} server exited at start; log:\n{self.log_tail()}")
            if _answers_ping(self.port):
                return
            time.sleep(0.02)
        raise TimeoutError(f"{self.kind} server on port {self.port} not ready; log:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server, like a crash, and wait until the port is free."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server with SIGTERM (clean shutdown)."""
        self._signal(signal.SIGTERM)

    def restart(self) -> None:
        """SIGKILL then start again on the same port with the same data."""
        self.kill()
        self.start()

    def _signal(self, sig: signal.Signals) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, sig)
        proc.wait(timeout=_READY_TIMEOUT)

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log file."""
        log = self.dir / "server.log"
        if not log.exists():
            return "(no log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        """Kill the server and remove its directory."""
        self.kill()
        self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def key_slot(key: str) -> int:
    """The cluster hash slot of ``key`` (its hash tag's, when it has one)."""
    return int(crc.key_slot(key.encode()))


class ClusterProcess:
    """A throw-away cluster: ``masters`` masters with ``replicas`` replicas each, on loopback.

    The nodes are ``ServerProcess`` instances with cluster mode on; the
    cluster is formed by ``redis-cli --cluster create`` (``valkey-cli`` for
    Valkey), as a user would. ``kill_master`` and ``wait_promoted`` drive a
    failover the way a crash does: SIGKILL, then the replica takes over.

        with ClusterProcess.start_new("redis") as cluster:
            print(cluster.url)   # redis+cluster://127.0.0.1:P1,127.0.0.1:P2,.../
            old = cluster.kill_master(key_slot("jq:{default}:queue"))
            new = cluster.wait_promoted(key_slot("jq:{default}:queue"), old)
    """

    def __init__(
        self,
        kind: ServerKind,
        *,
        masters: int = 3,
        replicas: int = 1,
        aof: bool = False,
        node_timeout_ms: int = 2000,
    ) -> None:
        cli = find_cli(kind)
        if cli is None:
            raise FileNotFoundError(f"{CLIS[kind]} is not installed (see tools/install-servers.sh)")
        self.kind = kind
        self.cli = cli
        self.replicas = replicas
        used: set[int] = set()
        self.nodes: list[ServerProcess] = []
        for _ in range(masters * (1 + replicas)):
            port, bus_port = free_port(used), free_port(used)
            used |= {port, bus_port}
            args = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",  # in the node's own --dir
                "--cluster-node-timeout", str(node_timeout_ms),
                # The bus port defaults to port + 10000, past 65535 for a high free port.
                "--cluster-port", str(bus_port),
                # A replica takes over however long its link was down: nodes share a loaded machine.
                "--cluster-replica-validity-factor", "0",
                # Replicas sync at once instead of after the default 5 s pause, and the
                # replication offset moves within 1 s (default 10 s): CLUSTER SLOTS hides
                # replicas whose offset is still 0, so clients would not see them.
                "--repl-diskless-sync-delay", "0",
                "--repl-ping-replica-period", "1",
            ]  # fmt: skip
            self.nodes.append(ServerProcess(kind, aof=aof, port=port, extra_args=args))

    @classmethod
    def start_new(cls, kind: ServerKind, **options: Any) -> Self:
        """Create a cluster and start it (options as for the constructor)."""
        cluster = cls(kind, **options)
        try:
            cluster.start()
        except BaseException:
            cluster.close()
            raise
        return cluster

    @property
    def url(self) -> str:
        """``redis+cluster://`` (``valkey+cluster://``) with every node as a seed."""
        scheme = "redis+cluster" if self.kind == "redis" else "valkey+cluster"
        return f"{scheme}://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes) + "/"

    def start(self) -> None:
        """Start every node, form the cluster and wait until it is ready."""
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        replicas = ["--cluster-replicas", str(self.replicas)]
        done = subprocess.run(
            [self.cli, "--cluster", "create", *addresses, *replicas, "--cluster-yes"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_READY_TIMEOUT * 4,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.cli} --cluster create failed:\n{done.stdout}\n{done.stderr}")
        self.wait_ready(replicated=True)

    def wait_ready(
        self, timeout: float = _READY_TIMEOUT * 4, *, replicated: bool = False
    ) -> dict[int, ServerProcess]:
        """Wait until the running nodes agree on a complete slot map and every replica is in sync.

        Returns the agreed map, first slot of a range -> its master. Every
        running node must say ``cluster_state:ok`` and report the same slot
        ranges owned by running nodes; every other running node must be a
        replica whose link to its master is up (a replica still syncing could
        not take over). With ``replicated``, every master must also have all
        its replicas (true after ``start``, not after a failover).
        """
        deadline = time.monotonic() + timeout
        problem = "not checked"
        while time.monotonic() < deadline:
            problem, owners = self._check(replicated)
            if owners is not None:
                return owners
            time.sleep(0.05)
        raise TimeoutError(f"{self.kind} cluster not ready after {timeout:.0f}s: {problem}")

    def _check(self, replicated: bool = False) -> tuple[str, dict[int, ServerProcess] | None]:
        by_port = {node.port: node for node in self.nodes if node.running}
        views: list[dict[tuple[int, int], tuple[int, ...]]] = []
        roles: dict[int, dict[str, Any]] = {}
        for port in by_port:
            try:
                with _client(port) as client:
                    info = client.execute_command("CLUSTER", "INFO")
                    slots = client.execute_command("CLUSTER", "SLOTS")
                    roles[port] = client.info("replication")
            except redis.RedisError as exc:
                return f"node {port}: {exc}", None
            if "cluster_state:ok" not in info:
                return f"node {port}: cluster_state is not ok", None
            # Per range: the master's port, then its replicas' (the view clients discover).
            views.append(
                {(int(r[0]), int(r[1])): (int(r[2][1]), *sorted(int(n[1]) for n in r[3:])) for r in slots}
            )
        if not views or any(view != views[0] for view in views):
            return "nodes disagree on the slot map", None
        if sum(end - start + 1 for start, end in views[0]) != _SLOTS:
            return "some slots have no master", None
        owners = {ports[0] for ports in views[0].values()}
        if not owners <= by_port.keys():
            return "a stopped node still owns slots", None
        for port, role in roles.items():
            if port in owners:
                if role["role"] != "master":
                    return f"node {port} owns slots but is not a master yet", None
                known = min(len(p) - 1 for p in views[0].values() if p[0] == port)
                if replicated and min(known, role["connected_slaves"]) < self.replicas:
                    return f"master {port} does not have its {self.replicas} replica(s) yet", None
            elif role["role"] != "slave" or role.get("master_link_status") != "up":
                return f"replica {port} is not in sync with a master yet", None
        return "ok", {start: by_port[ports[0]] for (start, _), ports in sorted(views[0].items())}

    def master_of(self, slot: int) -> ServerProcess:
        """The node that owns ``slot`` (the cluster must be ready)."""
        return _owner(self.wait_ready(), slot)

    @property
    def masters(self) -> list[ServerProcess]:
        """The running nodes that own slots (the cluster must be ready)."""
        return list(dict.fromkeys(self.wait_ready().values()))

    def kill_master(self, slot: int) -> ServerProcess:
        """SIGKILL the master that owns ``slot``, like a crash; return it (restartable)."""
        master = self.master_of(slot)
        master.kill()
        return master

    def wait_promoted(self, slot: int, old: ServerProcess, timeout: float = 60.0) -> ServerProcess:
        """Wait until another node took ``slot`` over from ``old`` and the cluster is ok again."""
        deadline = time.monotonic() + timeout
        while True:
            owners = self._check()[1]
            if owners is not None and _owner(owners, slot) is not old:
                return _owner(owners, slot)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no replica took slot {slot} over from port {old.port} in {timeout:.0f}s")
            time.sleep(0.05)

    def close(self) -> None:
        """Kill every node and remove their directories."""
        for node in self.nodes:
            node.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_SLOTS = 16384


def _owner(owners: dict[int, ServerProcess], slot: int) -> ServerProcess:
    return owners[max(first for first in owners if first <= slot)]


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2.0, decode_responses=True, protocol=2)
