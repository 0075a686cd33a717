"""Events built in SQL are exactly ``encode_event``'s bytes; NOTIFY payloads stay under the 8000-byte limit."""

from __future__ import annotations

import asyncio
import base64

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jobqueue.storage import Channel, EventKind, Finish, StorageEvent, encode_event, rules
from jobqueue_postgres import PostgresStorage
from jobqueue_postgres._events import (
    Subscription,
    listen_channels,
    notify_channel,
    parse_payload,
    wake_channel,
)

pytestmark = pytest.mark.postgres

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
SIZES = st.sampled_from([0, 1, 31, 32, 255, 256, 300, 65535, 65536, 70000])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(list(EventKind)),
    job_id=TEXT.filter(bool) | st.integers(1, 2000).map(lambda n: "é" * n),
    at=st.sampled_from([0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, rules.MAX_DEADLINE_MS]),
    worker=st.none() | TEXT,
    data=st.none() | SIZES.map(lambda n: bytes(range(256)) * (n // 256) + bytes(n % 256)),
)
async def test_sql_events_are_encode_events_bytes(
    storage: PostgresStorage, kind: EventKind, job_id: str, at: int, worker: str | None, data: bytes | None
) -> None:
    async with storage._shared.pool.acquire() as conn:
        payload: str = await conn.fetchval(
            f'SELECT "{storage.schema}".event_payload($1, $2, $3, $4, $5)',
            kind.value,
            job_id.encode(),
            at,
            None if worker is None else worker.encode(),
            data,
        )
    tag, built = payload[0], base64.b64decode(payload[1:])
    if tag == "e":
        assert built == encode_event(StorageEvent(kind, job_id, at, worker, data))
    else:  # over the NOTIFY limit: the event without its data
        assert data is not None and len(data) > 5000
        assert built == encode_event(StorageEvent(kind, job_id, at, worker, None))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.integers(0, 12_000),
    worker_size=st.sampled_from([1, 100, 9000]),
    job_id=st.sampled_from(["j", "€" * 340]),
)
async def test_payloads_stay_under_the_notify_limit(
    storage: PostgresStorage, size: int, worker_size: int, job_id: str
) -> None:
    async with storage._shared.pool.acquire() as conn:
        payload: str = await conn.fetchval(
            f"SELECT \"{storage.schema}\".event_payload('completed', $1, 1700000000000, $2, $3)",
            job_id.encode(),
            b"w" * worker_size,
            b"d" * size,
        )
    assert len(payload.encode()) < 8000
    event, partial = parse_payload(payload)
    assert event.job_id == job_id
    assert event.data == (None if partial else b"d" * size)
    assert partial == (
        len(
            base64.b64encode(
                encode_event(
                    StorageEvent(EventKind.COMPLETED, job_id, 1700000000000, "w" * worker_size, b"d" * size)
                )
            )
        )
        >= 7999
    )


async def _next(events: object, timeout: float = 10) -> StorageEvent:
    return await asyncio.wait_for(anext(events), timeout)  # type: ignore[call-overload]


@pytest.mark.parametrize("size", [10, 5_000, rules.INLINE_RESULT_LIMIT, rules.INLINE_RESULT_LIMIT + 1])
async def test_a_large_result_rides_along_by_id_and_is_fetched(storage: PostgresStorage, size: int) -> None:
    result = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    await storage.enqueue("big", b"m")
    async with storage.subscribe(Channel.DONE) as done:
        (claim,) = await storage.dequeue("w", lease_ms=10_000, timeout_ms=0)
        assert await storage.complete(claim.id, "w", result, 60_000)
        event = await _next(done)
    assert (event.kind, event.job_id, event.worker_id) == (EventKind.COMPLETED, "big", "w")
    assert event.data == rules.inline(result)


async def test_large_progress_is_fetched_too(storage: PostgresStorage) -> None:
    await storage.enqueue("p", b"m")
    progress = b"p" * rules.INLINE_RESULT_LIMIT
    async with storage.subscribe(Channel.EVENTS) as events:
        await storage.dequeue("w", lease_ms=10_000, timeout_ms=0)
        assert (await _next(events)).kind is EventKind.PROCESSING
        assert await storage.set_progress("p", "w", progress)
        event = await _next(events)
    assert (event.kind, event.data) == (EventKind.PROGRESS, progress)
    record = await storage.get("p")
    assert record is not None and record.progress == progress


async def test_namespaces_do_not_hear_each_other(storage: PostgresStorage) -> None:
    other = storage.namespace("other")
    async with other.subscribe(Channel.EVENTS) as heard, storage.subscribe(Channel.EVENTS) as mine:
        await storage.enqueue("a", b"m")
        await other.enqueue("b", b"m")
        assert (await _next(mine)).job_id == "a"
        assert (await _next(heard)).job_id == "b"
        await storage.enqueue("c", b"m")
        assert (await _next(mine)).job_id == "c"


async def test_a_notification_is_sent_only_on_commit(
    storage: PostgresStorage, admin: asyncpg.Connection
) -> None:
    async with storage.subscribe(Channel.EVENTS) as events:
        async with admin.transaction():
            await storage.enqueue_on(admin, "tx", b"m")
            with pytest.raises(TimeoutError):
                await _next(events, timeout=0.3)
        event = await _next(events)
    assert (event.kind, event.job_id) == (EventKind.ENQUEUED, "tx")


async def test_finish_events_carry_the_worker_and_inline_data(storage: PostgresStorage) -> None:
    for job_id in ("ok", "bad", "again", "back"):
        await storage.enqueue(job_id, b"m")
    async with storage.subscribe(Channel.EVENTS, Channel.DONE) as events:
        claims = await storage.dequeue("w", lease_ms=10_000, timeout_ms=0, limit=4)
        assert [claim.id for claim in claims] == ["ok", "bad", "again", "back"]
        stored = await storage.finish_many(
            "w",
            [
                Finish.complete("ok", b"r", 60_000),
                Finish.fail("bad", b"e", 60_000),
                Finish.retry("again", b"e2", 60_000),
                Finish.release("back"),
            ],
        )
        assert stored == [True, True, True, True]
        seen = [await _next(events) for _ in range(4 + 6)]
    finished = [(e.kind, e.job_id, e.worker_id, e.data) for e in seen if e.kind is not EventKind.PROCESSING]
    assert finished == [
        (EventKind.COMPLETED, "ok", "w", b"r"),
        (EventKind.COMPLETED, "ok", "w", b"r"),  # once per subscribed channel: events and done
        (EventKind.FAILED, "bad", "w", b"e"),
        (EventKind.FAILED, "bad", "w", b"e"),
        (EventKind.FAILING, "again", "w", None),
        (EventKind.REQUEUED, "back", "w", None),
    ]


async def test_a_slow_subscriber_keeps_the_newest_events() -> None:
    async def no_fetch(event: StorageEvent) -> bytes | None:
        raise AssertionError("nothing to fetch")

    subscription = Subscription(frozenset({Channel.EVENTS}), no_fetch, limit=3)
    for i in range(5):
        subscription.deliver(StorageEvent(EventKind.ENQUEUED, f"j{i}", i), partial=False)
    subscription.close()
    assert [event.job_id async for event in subscription] == ["j2", "j3", "j4"]
    assert subscription.dropped == 2


def test_every_event_kind_goes_out_where_its_subscribers_listen() -> None:
    for kind in EventKind:
        sent = notify_channel("jq_stem", kind)
        for channel in kind.channels:
            assert sent in listen_channels("jq_stem", frozenset({channel})), kind
    # waiters hear outcomes only, blocked claims only the events that may make a job ready
    assert listen_channels("jq_stem", frozenset({Channel.DONE})) == [
        notify_channel("jq_stem", EventKind.COMPLETED)
    ]
    waking = {kind for kind in EventKind if notify_channel("jq_stem", kind) == wake_channel("jq_stem")}
    assert waking == {EventKind.ENQUEUED, EventKind.REQUEUED, EventKind.FAILING, EventKind.STALLED}
