"""Throw-away Redis / Valkey clusters for tests, benchmarks and chaos runs.

A ``ClusterProcess`` is 3 masters and 3 replicas (by default), each a
``ServerProcess`` with cluster mode on, formed by ``redis-cli --cluster create``
(``valkey-cli`` for Valkey) as a user would. Helpers find the master that owns
a slot, SIGKILL it and wait for its replica's promotion, or move a slot as a
resharding does. Synchronous, like ``tools.servers``.

    with ClusterProcess.start_new("redis") as cluster:
        print(cluster.url)   # redis+cluster://127.0.0.1:P1,127.0.0.1:P2,.../
        slot = key_slot("jq:{default}:ready")
        old = cluster.kill_master(slot)
        new = cluster.wait_promoted(slot, old)
"""

from __future__ import annotations

import subprocess
import time
from types import TracebackType
from typing import Any, Self

import redis
from redis import crc

from tools.servers import (
    CLIS,
    READY_TIMEOUT,
    ServerKind,
    ServerProcess,
    find_cli,
    free_port,
    start_on_free_ports,
)

__all__ = ["ClusterProcess", "key_slot"]


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
        """Create a cluster and start it (options as for the constructor), on other ports if one was taken."""
        return start_on_free_ports(lambda: cls(kind, **options))

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
            timeout=READY_TIMEOUT * 4,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.cli} --cluster create failed:\n{done.stdout}\n{done.stderr}")
        self.wait_ready(replicated=True)

    def wait_ready(
        self, timeout: float = READY_TIMEOUT * 4, *, replicated: bool = False
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

    def move_slot(self, slot: int, target: ServerProcess) -> None:
        """Move ``slot`` and its keys to the master ``target``, as a resharding does.

        The steps of the Redis cluster tutorial: IMPORTING on the target,
        MIGRATING on the source, MIGRATE the keys, then SETSLOT NODE everywhere.
        """
        source = self.master_of(slot)
        if source is target:
            return
        with _client(source.port) as src, _client(target.port) as dst:
            source_id, target_id = (
                src.execute_command("CLUSTER", "MYID"),
                dst.execute_command("CLUSTER", "MYID"),
            )
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            for master in (target, source):
                with _client(master.port) as client:
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        for node in self.nodes:  # the other masters learn it by gossip; telling them is quicker
            if node.running and node not in (source, target):
                with _client(node.port) as client:
                    if client.info("replication")["role"] == "master":
                        client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self.wait_ready()

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
