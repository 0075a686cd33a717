"""The cluster launcher and fixtures themselves: a ready 3+3 cluster, failover helpers, skip rules."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
import redis
from redis.cluster import RedisCluster

from tests import server_support
from tools import servers
from tools.clusters import ClusterProcess, key_slot
from tools.servers import ServerKind


def _seeds(url: str) -> list[tuple[str, int]]:
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    return [(host, int(port)) for host, _, port in (seed.rpartition(":") for seed in netloc.split(","))]


def test_session_cluster_has_three_masters_with_a_replica_each(cluster_url: str, kind: ServerKind) -> None:
    assert cluster_url.startswith(f"{kind}+cluster://")
    seeds = _seeds(cluster_url)
    host, port = seeds[0]
    with redis.Redis(host=host, port=port, decode_responses=True) as node:
        info = node.execute_command("CLUSTER", "INFO")
        nodes = node.execute_command("CLUSTER", "NODES")
    assert "cluster_state:ok" in info
    assert "cluster_size:3" in info
    flags = [line.split()[2] for line in nodes.splitlines()]
    assert sum("master" in f for f in flags) == 3
    assert sum("slave" in f for f in flags) == 3


def test_any_seed_reaches_every_slot(cluster_url: str, prefix: str) -> None:
    host, port = _seeds(cluster_url)[-1]
    with RedisCluster(host=host, port=port, decode_responses=True) as client:
        keys = [f"{prefix}:{{{n}}}:k" for n in range(30)]
        for key in keys:
            client.set(key, key, px=60_000)
        assert len({key_slot(key) for key in keys}) == 30
        assert [client.get(key) for key in keys] == keys
        assert len(client.get_primaries()) == 3


def test_failover_helpers_promote_the_replica(private_cluster: Callable[..., ClusterProcess]) -> None:
    cluster = private_cluster()
    for node in cluster.nodes:  # the bus port is chosen too: port + 10000 can be past 65535
        assert int(node.extra_args[node.extra_args.index("--cluster-port") + 1]) not in {
            node.port,
            node.port + 10000,
        }
    key = "jq:{default}:queue"
    slot = key_slot(key)
    old = cluster.master_of(slot)
    assert old in cluster.masters
    with redis.Redis(port=old.port) as node:
        node.set(key, b"kept")
        assert node.execute_command("WAIT", 1, 5000) == 1  # the replica has it before the crash

    assert cluster.kill_master(slot) is old
    assert not old.running
    new = cluster.wait_promoted(slot, old)
    assert new is not old and new.running
    assert cluster.master_of(slot) is new
    with redis.Redis(port=new.port) as node:
        assert node.get(key) == b"kept"

    old.start()  # the old master comes back as a replica of the new one
    cluster.wait_ready()
    assert cluster.master_of(slot) is new
    with redis.Redis(port=old.port, decode_responses=True) as node:
        assert node.info("replication")["role"] == "slave"


def test_the_environment_url_is_used_as_is(monkeypatch: pytest.MonkeyPatch, kind: ServerKind) -> None:
    monkeypatch.setenv(server_support.CLUSTER_URL_ENV[kind], f"{kind}+cluster://example.invalid:7000/")
    assert list(server_support.cluster_url(kind)) == [f"{kind}+cluster://example.invalid:7000/"]


@pytest.mark.parametrize("required", [False, True])
def test_a_missing_cli_skips_or_fails_when_required(
    monkeypatch: pytest.MonkeyPatch, kind: ServerKind, required: bool
) -> None:
    monkeypatch.setitem(servers.CLIS, kind, "jobqueue-no-such-cli")
    monkeypatch.delenv(server_support.CLUSTER_URL_ENV[kind], raising=False)
    monkeypatch.setenv("JOBQUEUE_REQUIRE_SERVERS", "1" if required else "0")
    outcome = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(outcome, match="jobqueue-no-such-cli is not installed"):
        next(server_support.cluster_url(kind))
