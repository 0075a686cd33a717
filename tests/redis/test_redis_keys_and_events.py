"""Redis-specific layout: one hash tag per namespace, isolation, URLs, odd job ids in events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from jobqueue import JobState, StorageError, storage_from_url
from jobqueue.storage import Channel, EventKind, StorageEvent, rules
from jobqueue_conformance import wait_until
from jobqueue_redis import RedisStorage, _listening
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.crc import key_slot

ODD_IDS = ["user:42", "a b c", "{tag}", "}{", "x}:y{z", "ünï:cödé 🎉", "line\nbreak", "*?[glob]"]


async def _next(events: AsyncIterator[StorageEvent], timeout: float = 2.0) -> StorageEvent | None:
    try:
        return await asyncio.wait_for(anext(events), timeout)
    except TimeoutError:
        return None


async def _keys(raw: Redis, prefix: str) -> list[bytes]:
    return [key async for key in raw.scan_iter(match=f"{prefix}:*", count=1000)]


async def _drive_every_structure(storage: RedisStorage, ids: list[str]) -> None:
    """Put jobs in every state so that every kind of key exists."""
    await storage.register_worker("w:1 {x}", 10_000)
    for job_id in ids:
        await storage.enqueue(job_id, b"m")
    await storage.enqueue("later", b"m", delay_ms=60_000)
    claims = await storage.dequeue("w:1 {x}", lease_ms=10_000, timeout_ms=0, limit=len(ids))
    assert len(claims) == len(ids)
    await storage.complete(ids[0], "w:1 {x}", b"r", 60_000)
    await storage.fail(ids[1], "w:1 {x}", b"e", 60_000)
    await storage.retry(ids[2], "w:1 {x}", b"e", 60_000)
    assert await storage.acquire_lock("leader {x}", "me", 10_000)
    await storage.enqueue("ready {x}", b"m")


async def test_every_key_of_a_namespace_shares_one_hash_tag(
    storage: RedisStorage, raw: Redis, prefix: str
) -> None:
    await _drive_every_structure(storage, ODD_IDS)
    keys = await _keys(raw, prefix)
    names = {key.decode()[len(f"{prefix}:{{default}}:") :].split(":")[0] for key in keys}
    assert {"live", "ready", "scheduled", "retries", "leases", "completed", "failed", "jobs", "job"} <= names
    assert {"workers", "heartbeats", "lock", "seq", "marker"} <= names
    assert all(key.startswith(f"{prefix}:{{default}}:".encode()) for key in keys)
    assert {key_slot(key) for key in keys} == {key_slot(b"{default}")}, "one slot for the whole namespace"
    for channel in Channel:
        assert key_slot(storage.keys.channel(channel).encode()) == key_slot(b"{default}")


async def test_two_prefixes_and_two_namespaces_are_isolated(server_url: str, prefix: str) -> None:
    async with (
        RedisStorage(server_url, prefix=prefix) as a,
        RedisStorage(server_url, prefix=prefix + "-other") as b,
    ):
        c = a.namespace("other")
        async with (
            a.subscribe(Channel.EVENTS) as events_a,
            b.subscribe(Channel.EVENTS) as events_b,
            c.subscribe(Channel.EVENTS) as events_c,
        ):
            assert (await a.enqueue("same", b"a")).accepted
            assert (await b.enqueue("same", b"b")).accepted
            assert (await c.enqueue("same", b"c")).accepted
            # each subscriber's first event is its own: none crossed over
            for events in (events_a, events_b, events_c):
                event = await _next(events)
                assert event is not None and (event.kind, event.job_id) == (EventKind.ENQUEUED, "same")
            records = [await storage.get("same") for storage in (a, b, c)]
            assert [record.message if record else None for record in records] == [b"a", b"b", b"c"]
            claims = await b.dequeue("w", lease_ms=5000, timeout_ms=0, limit=10)
            assert [claim.message for claim in claims] == [b"b"]
            assert (await a.counts())[JobState.QUEUED] == 1
            assert await a.list_namespaces() == ["default", "other"]
            assert await b.list_namespaces() == ["default"]
            for events in (events_a, events_c):
                assert await _next(events, timeout=0.2) is None, "b's claim is not heard in a or c"


async def test_odd_job_ids_round_trip_through_keys_and_events(storage: RedisStorage) -> None:
    big = b"\xff" * (rules.INLINE_RESULT_LIMIT + 1)
    async with storage.subscribe(Channel.EVENTS, Channel.DONE) as events:
        for job_id in ODD_IDS:
            await storage.enqueue(job_id, b"m")
        claims = await storage.dequeue("wörker:1", lease_ms=5000, timeout_ms=0, limit=len(ODD_IDS))
        assert [claim.id for claim in claims] == ODD_IDS
        for i, job_id in enumerate(ODD_IDS):
            result = big if i == 0 else b"\x00\xc0binary\xff" + job_id.encode()
            assert await storage.complete(job_id, "wörker:1", result, 60_000)
        seen: list[StorageEvent] = []
        while len(seen) < len(ODD_IDS) * 4:  # enqueued, processing, completed on events and on done
            event = await _next(events)
            assert event is not None, f"missing events after {seen}"
            seen.append(event)
    assert [e.job_id for e in seen if e.kind is EventKind.ENQUEUED] == ODD_IDS
    processing = [e for e in seen if e.kind is EventKind.PROCESSING]
    assert [e.job_id for e in processing] == ODD_IDS
    assert {e.worker_id for e in processing} == {"wörker:1"}
    done = [e for e in seen if e.kind is EventKind.COMPLETED]
    assert [e.job_id for e in done] == [job_id for job_id in ODD_IDS for _ in range(2)]
    assert done[0].data is None, "a result over rules.INLINE_RESULT_LIMIT is not inlined"
    assert done[2].data == b"\x00\xc0binary\xff" + ODD_IDS[1].encode(), "binary results ride intact"
    assert all(e.at > 0 for e in seen)
    for job_id in ODD_IDS[1:]:
        record = await storage.get(job_id)
        assert record is not None and record.id == job_id and record.state is JobState.COMPLETED


async def test_an_unregistered_worker_is_listed_while_it_holds_jobs(storage: RedisStorage) -> None:
    await storage.register_worker("w", 10_000)
    await storage.enqueue("held", b"m")
    assert await storage.dequeue("w", lease_ms=200, timeout_ms=0)
    await storage.unregister_worker("w")
    [worker] = await storage.list_workers()
    assert worker.id == "w" and worker.jobs == ("held",) and worker.expires_at == 0

    async def recovered() -> bool:
        return [s.id for s in (await storage.recover_stalled()).stalled] == ["held"]

    await wait_until(recovered, message="the 200 ms lease runs out and the job is recovered")
    assert await storage.list_workers() == []


@pytest.mark.redis
async def test_urls_choose_scheme_prefix_and_redis_options(redis_url: str) -> None:
    netloc = urlsplit(redis_url).netloc
    prefix = f"u{uuid.uuid4().hex[:8]}"
    for scheme in ("redis", "valkey"):
        storage = storage_from_url(f"{scheme}://{netloc}/3?prefix={prefix}&socket_timeout=5")
        assert isinstance(storage, RedisStorage) and storage.keys.prefix == prefix
        async with storage:
            await storage.enqueue(f"in-db-3-{scheme}", b"m")
    db3 = Redis.from_url(f"redis://{netloc}/3", protocol=2)
    try:
        live = await db3.hkeys(f"{prefix}:{{default}}:live")
        assert sorted(live) == [f"in-db-3-{s}".encode() for s in ("redis", "valkey")]
        await db3.delete(*[key async for key in db3.scan_iter(match=f"{prefix}:*")])
    finally:
        await db3.aclose()
    assert RedisStorage.from_url("rediss://h:1/0").keys.prefix == "jq"
    assert RedisStorage.from_url("valkeys://h:1/0?prefix=p").keys.base == "p:{default}:"


def test_bad_urls_and_names_are_rejected_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="bogus"):
        RedisStorage.from_url("redis://h:1/0?bogus=1")
    with pytest.raises(ValueError, match="not a redis url"):
        RedisStorage.from_url("http://h:1/0")
    with pytest.raises(ValueError, match="hash tag"):
        RedisStorage("redis://h:1/0", prefix="a{b")
    with pytest.raises(ValueError, match="hash tag"):
        RedisStorage("redis://h:1/0").namespace("x}")
    with pytest.raises(ValueError, match="must not be empty"):
        RedisStorage("redis://h:1/0", name="")


async def test_concurrent_first_connects_share_one_set_of_connections(server_url: str, prefix: str) -> None:
    storages = [RedisStorage(server_url, prefix=f"{prefix}{i}") for i in range(5)]
    await asyncio.gather(*(storage.connect() for storage in storages))
    try:
        outcomes = await asyncio.gather(*(storage.enqueue("x", b"m") for storage in storages))
        assert all(outcome.accepted for outcome in outcomes)
    finally:
        await asyncio.gather(*(storage.disconnect() for storage in storages))
    with pytest.raises(StorageError, match="not connected"):
        await storages[0].counts()


async def _published(pubsub: PubSub, expected: int) -> list[bytes]:
    """The channels of the messages ``pubsub`` receives: ``expected`` of them, then any more in 0.3 s."""
    seen: list[bytes] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (10 if expected else 0.3)
    while (left := deadline - loop.time()) > 0:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
        if message is not None:
            seen.append(message["channel"])
        if len(seen) == expected:
            deadline = min(deadline, loop.time() + 0.3)
    return seen


async def test_events_and_done_are_published_only_while_a_process_listens(
    storage: RedisStorage, raw: Redis
) -> None:
    events, done = storage.keys.channel(Channel.EVENTS).encode(), storage.keys.channel(Channel.DONE).encode()
    flags = [storage.keys.fixed("heard:events"), storage.keys.fixed("heard:done")]
    pubsub = raw.pubsub()  # hears what is published, without the flags of a listening process
    await pubsub.subscribe(events, done)

    async def round_trip(job_id: str) -> None:
        await storage.enqueue(job_id, b"m")
        assert [c.id for c in await storage.dequeue("w", lease_ms=5000, timeout_ms=0, limit=1)] == [job_id]
        assert await storage.complete(job_id, "w", b"r", 60_000)

    try:
        await round_trip("unheard")
        assert await _published(pubsub, 0) == []
        async with storage.subscribe(Channel.DONE) as heard:
            assert await raw.exists(*flags) == 1
            await round_trip("waited")
            event = await _next(heard)
            assert event is not None and (event.kind, event.job_id) == (EventKind.COMPLETED, "waited")
            assert await _published(pubsub, 1) == [done], "done only: nobody listens on events"
        await wait_until(
            lambda: _no_key(raw, *flags), message="the last subscription takes its flag out", timeout=5
        )
        # another process listening on events (its token in the flag) still hears them
        await raw.zadd(flags[0], {"other-process": 0})
        await raw.pexpire(flags[0], 30_000)
        await round_trip("heard elsewhere")
        assert await _published(pubsub, 3) == [events, events, events]  # enqueued, processing, completed
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py: unannotated


async def _no_key(raw: Redis, *keys: str) -> bool:
    return await raw.exists(*keys) == 0


async def test_a_listening_flag_is_renewed_while_a_subscription_lasts(
    storage: RedisStorage, raw: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_listening, "FLAG_TTL_MS", 400)
    monkeypatch.setattr(_listening, "_RENEW_EVERY", 0.1)
    flag = storage.keys.fixed("heard:events")
    async with storage.subscribe(Channel.EVENTS) as events:
        last = [await raw.pttl(flag)]

        async def renewed() -> bool:  # its TTL went up since the previous look
            ttl = await raw.pttl(flag)
            went_up, last[0] = ttl > last[0], ttl
            return went_up

        for _ in range(6):  # renewed again and again, well past its 400 ms TTL
            await wait_until(renewed, message="the flag is renewed", timeout=5)
        await storage.enqueue("late", b"m")
        event = await _next(events)
        assert event is not None and (event.kind, event.job_id) == (EventKind.ENQUEUED, "late")
    await wait_until(lambda: _no_key(raw, flag), message="the flag goes with the subscription", timeout=5)
