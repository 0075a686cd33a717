"""RedisStorage on a cluster: URLs, routing, sharded pub/sub, partitions, every master listed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from jobqueue import JobState, Queue, StorageError, storage_from_url
from jobqueue.storage import Channel, EventKind, NewJob
from jobqueue_conformance import wait_until
from jobqueue_redis import RedisStorage, _scripts
from jobqueue_redis._cluster import parse_cluster_url
from jobqueue_redis._partitions import PartitionedRedisStorage, partition_of
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from tests.redis import test_redis_scripts as redis_scripts
from tools.clusters import ClusterProcess, key_slot
from tools.servers import ServerKind


def _seeds(url: str) -> list[str]:
    return urlsplit(url).netloc.rpartition("@")[2].split(",")


def test_cluster_urls_name_seeds_and_options() -> None:
    parsed = parse_cluster_url("rediss+cluster://u:p%40ss@h1:7000,[::1]:7001/?socket_timeout=2.5")
    assert parsed.seeds == (("h1", 7000), ("::1", 7001))
    assert parsed.options["ssl"] is True
    assert (parsed.options["username"], parsed.options["password"]) == ("u", "p@ss")
    assert parsed.options["socket_timeout"] == 2.5
    assert "ssl" not in parse_cluster_url("valkey+cluster://h:1/").options
    with pytest.raises(ValueError, match="host:port"):
        parse_cluster_url("redis+cluster://h1,h2:7000/")
    with pytest.raises(ValueError, match="port is not a number"):
        storage_from_url("redis+cluster://h1:7000,h2:99999/")
    with pytest.raises(ValueError, match="one database"):
        parse_cluster_url("redis+cluster://h:7000/3")
    storage = storage_from_url("valkey+cluster://h:7000,[::1]:7001/?prefix=app&partitions=3&min_replicas=1")
    assert isinstance(storage, PartitionedRedisStorage)
    assert [p.keys.namespace for p in storage.partitions] == ["default", "default#1", "default#2"]
    assert storage.keys.prefix == "app"
    with pytest.raises(ValueError, match="partitions"):
        RedisStorage("redis+cluster://h:7000/", partitions=0)
    with pytest.raises(ValueError, match="min_replicas must be an integer"):
        RedisStorage("redis+cluster://h:7000/?min_replicas=one")
    with pytest.raises(ValueError, match="unknown storage url option"):
        RedisStorage("redis+cluster://h:7000/?partition=2")


async def test_any_one_seed_is_enough(cluster_url: str, kind: ServerKind, prefix: str) -> None:
    last = _seeds(cluster_url)[-1]
    async with RedisStorage(f"{kind}+cluster://{last}/?prefix={prefix}") as storage:
        for name in ("a", "b", "c", "d"):  # namespaces on several masters
            view = storage.namespace(name)
            assert (await view.enqueue(f"{name}-1", b"m")).accepted
            assert (await view.get(f"{name}-1")) is not None


async def test_a_plain_url_on_a_cluster_node_names_the_cluster_url(
    cluster_url: str, kind: ServerKind
) -> None:
    node = _seeds(cluster_url)[0]
    scheme = "valkey" if kind == "valkey" else "redis"
    with pytest.raises(StorageError, match=rf"redis\+cluster://{node}/"):
        async with RedisStorage(f"{scheme}://{node}/0"):
            pass


async def test_events_are_published_on_the_shard_of_the_queue(cluster_url: str, prefix: str) -> None:
    async with RedisStorage(cluster_url, prefix=prefix) as storage:
        host, port = _seeds(cluster_url)[0].split(":")
        cluster = RedisCluster(host=host, port=int(port), protocol=2)
        try:
            await cluster.initialize()
            owner = cluster.get_node_from_key(storage.keys.channel(Channel.EVENTS)) or pytest.fail("no owner")
            # A raw sharded subscriber on the owner hears the scripts' SPUBLISH.
            raw = Redis(host=owner.host, port=int(owner.port), protocol=2)
            pubsub = raw.pubsub()
            await pubsub.ssubscribe(storage.keys.channel(Channel.EVENTS))
            await pubsub.get_message(timeout=5)  # the ssubscribe confirmation
            async with storage.subscribe(Channel.EVENTS) as events:
                await storage.enqueue("j1", b"m")
                event = await asyncio.wait_for(anext(events), 5)
            assert (event.kind, event.job_id) == (EventKind.ENQUEUED, "j1")
            message = await pubsub.get_message(timeout=5)
            assert message is not None and message["type"] == "smessage"
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py: unannotated
            await raw.aclose()
        finally:
            await cluster.aclose()


async def test_list_namespaces_sees_queues_on_every_master(cluster_url: str, prefix: str) -> None:
    async with RedisStorage(cluster_url, prefix=prefix) as storage:
        host, port = _seeds(cluster_url)[0].split(":")
        cluster = RedisCluster(host=host, port=int(port), protocol=2)
        try:
            await cluster.initialize()
            owners: dict[str, str] = {}
            for n in range(200):  # one namespace on each master
                name = f"q{n}"
                node = cluster.get_node_from_key(storage.namespace(name).keys.base)
                assert node is not None
                owners.setdefault(node.name, name)
                if len(owners) == 3:
                    break
        finally:
            await cluster.aclose()
        assert len(owners) == 3
        for name in owners.values():
            await storage.namespace(name).enqueue("j", b"m")
        assert sorted(await storage.list_namespaces()) == sorted(owners.values())


async def test_partitions_spread_a_queue_over_slots(cluster_url: str, prefix: str) -> None:
    async with RedisStorage(cluster_url, prefix=prefix, partitions=4) as storage:
        assert isinstance(storage, PartitionedRedisStorage)
        ids = [f"job-{i}" for i in range(40)]
        outcomes = await storage.enqueue_many([NewJob(job_id, b"m") for job_id in [*ids, "job-0"]])
        assert [o.accepted for o in outcomes] == [True] * 40 + [False], "dedup stays per id"
        used = {partition_of(job_id, 4) for job_id in ids}
        assert used == {0, 1, 2, 3}
        slots = {key_slot(part.keys.base) for part in storage.partitions}
        assert len(slots) == 4, "each partition is its own hash slot"
        assert (await storage.counts())[JobState.QUEUED] == 40
        claimed = await storage.dequeue("w", lease_ms=10_000, timeout_ms=0, limit=100)
        assert sorted(c.id for c in claimed) == sorted(ids), "a worker claims from every partition"
        assert await storage.list_namespaces() == ["default"], "partitions are one namespace"
        workers = list(await storage.list_workers())
        assert [w.id for w in workers] == ["w"] and len(workers[0].jobs) == 40


async def test_a_blocked_worker_wakes_for_any_partition(cluster_url: str, prefix: str) -> None:
    async with RedisStorage(cluster_url, prefix=prefix, partitions=4) as storage:
        for target in range(4):
            job_id = next(
                f"p{target}-{n}" for n in range(1000) if partition_of(f"p{target}-{n}", 4) == target
            )
            loop = asyncio.get_running_loop()
            waiter = asyncio.create_task(storage.dequeue("w", lease_ms=10_000, timeout_ms=20_000))
            await asyncio.sleep(0.2)  # the worker is blocked: every partition is empty
            started = loop.time()
            await storage.enqueue(job_id, b"m")
            claims = await asyncio.wait_for(waiter, 10)
            assert [c.id for c in claims] == [job_id]
            assert loop.time() - started < 5, "woken by the event, not by its timeout"


async def test_enqueue_and_wait_across_partitions(cluster_url: str, prefix: str) -> None:
    storage = RedisStorage(cluster_url, prefix=prefix, partitions=4)
    queue: Queue[int, int] = Queue(storage=storage, concurrency=4)
    queue.execute(lambda job: job.payload * 2)
    async with storage, queue:
        results = await asyncio.gather(*(queue.enqueue_and_wait(f"w{i}", i, timeout=30) for i in range(20)))
        assert results == [i * 2 for i in range(20)]


async def test_min_replicas_waits_for_the_replica(cluster_url: str, prefix: str) -> None:
    async with RedisStorage(cluster_url, prefix=prefix, min_replicas=1) as storage:
        assert (await storage.enqueue("kept", b"m")).accepted
    # Each master has one replica: asking for two fails, quickly, and says why.
    async with RedisStorage(cluster_url, prefix=prefix, min_replicas=2, replica_timeout=0.2) as storage:
        with pytest.raises(StorageError, match="1 of 2 replica"):
            await storage.enqueue("unconfirmed", b"m")
        record = await storage.get("unconfirmed")
        assert record is not None, "the write happened on the master; only its replication is unconfirmed"


async def test_a_dequeue_blocks_on_the_owner_until_a_job_comes(cluster_url: str, prefix: str) -> None:
    async with RedisStorage(cluster_url, prefix=prefix) as storage:
        waiter = asyncio.create_task(storage.dequeue("w", lease_ms=10_000, timeout_ms=20_000))
        await asyncio.sleep(0.2)
        assert not waiter.done()
        await storage.enqueue("j", b"m")
        claims = await asyncio.wait_for(waiter, 10)
        assert [c.id for c in claims] == ["j"]

        async def settled() -> bool:
            return (await storage.counts())[JobState.PROCESSING] == 1

        await wait_until(settled, message="the claimed job is processing", timeout=5)


@pytest.mark.redis
async def test_min_replicas_on_a_single_server_without_replicas(redis_url: str, prefix: str) -> None:
    async with RedisStorage(redis_url, prefix=prefix, min_replicas=1, replica_timeout=0.1) as storage:
        with pytest.raises(StorageError, match="0 of 1 replica"):
            await storage.enqueue("j", b"m")
        assert (await storage.dequeue("w", lease_ms=1000, timeout_ms=0))[0].id == "j", "claims do not wait"


async def test_a_resharded_queue_is_followed(
    private_cluster: Callable[..., ClusterProcess], prefix: str
) -> None:
    cluster = await asyncio.to_thread(private_cluster)
    async with RedisStorage(cluster.url, prefix=prefix) as storage:
        await storage.enqueue("before", b"m")
        slot = key_slot(storage.keys.base)
        old = await asyncio.to_thread(cluster.master_of, slot)
        target = next(m for m in await asyncio.to_thread(lambda: cluster.masters) if m is not old)
        async with storage.subscribe(Channel.EVENTS) as events:
            await asyncio.to_thread(cluster.move_slot, slot, target)
            # Commands follow the MOVED replies (they did not run: sent again, no error).
            assert (await storage.enqueue("after", b"m")).accepted
            claims = await storage.dequeue("w", lease_ms=10_000, timeout_ms=0, limit=10)
            assert sorted(c.id for c in claims) == ["after", "before"]
            # The old owner dropped the sharded subscription; it is made again on the new one.
            probes = iter(range(1000))

            async def heard_a_probe() -> bool:
                probe = f"probe-{next(probes)}"
                await storage.enqueue(probe, b"m")
                try:
                    while True:
                        event = await asyncio.wait_for(anext(events), 0.5)
                        if event.job_id == probe:
                            return True
                except TimeoutError:
                    return False

            await wait_until(heard_a_probe, message="events are heard from the new owner", timeout=30)
        # A blocking dequeue goes to the new owner too.
        await storage.dequeue("w", lease_ms=10_000, timeout_ms=0, limit=1000)  # the probes
        waiter = asyncio.create_task(storage.dequeue("w", lease_ms=10_000, timeout_ms=20_000, limit=100))
        await asyncio.sleep(0.2)
        await storage.enqueue("last", b"m")
        assert [c.id for c in await asyncio.wait_for(waiter, 10)] == ["last"]
    assert await asyncio.to_thread(cluster.master_of, slot) is target


async def test_every_cluster_script_touches_only_declared_keys(
    cluster_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cluster refuses a key of another slot; the prelude also catches an undeclared key of
    # the same slot. The cluster variants publish with SPUBLISH, whose channel is not a key.
    prelude = redis_scripts.CHECKING_PRELUDE.replace("PUBLISH = true", "PUBLISH = true, SPUBLISH = true")
    checked = {name: _scripts.build(name, prelude, sharded=True) for name in _scripts.SCRIPT_NAMES}
    monkeypatch.setattr(_scripts, "sharded_scripts", lambda: checked)
    async with RedisStorage(cluster_url, prefix=prefix) as storage:
        await redis_scripts.test_every_script_touches_only_declared_keys(storage)
