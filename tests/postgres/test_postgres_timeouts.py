"""Client time limits: a cut network link is a prompt ``StorageError``, and the same storage works once it heals.

The server runs in a network namespace of its own (``tools/chaos_netns.NetworkJail``);
``cut()`` sets the host end of its link down, so established connections stall
as across a real partition (no reset ever arrives).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import jobqueue
import pytest
from jobqueue.storage import Channel, EventKind, StorageError
from jobqueue_postgres import PostgresStorage

from tests.server_support import jail_or_skip, postgres_or_skip
from tools.chaos_netns import NetworkJail
from tools.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres

T = TypeVar("T")

TIMEOUT = 2.0
MARGIN = 8.0  # a loaded 2-core box: scheduling, the pool replacing a dropped connection
SECRET = "s3cret-pw"


@pytest.fixture
def jailed() -> Iterator[tuple[NetworkJail, PostgresServer]]:
    """A PostgreSQL in a network namespace, and the jail whose link can be cut."""
    postgres_or_skip()
    jail = jail_or_skip()
    try:
        with PostgresServer(host=jail.ns_address, launcher=jail.launcher) as server:
            server.start()
            yield jail, server
    finally:
        jail.restore()
        jail.destroy()


def _url(server: PostgresServer) -> str:
    # trust auth: the password is never asked for, but it is in the URL, as a real one would be
    return (
        f"postgresql://postgres:{SECRET}@{server.host}:{server.port}/postgres"
        f"?schema=cut&connect_timeout={TIMEOUT}&command_timeout={TIMEOUT}"
    )


async def _fails_within(call: Callable[[], Awaitable[object]], limit: float) -> StorageError:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StorageError) as caught:
        await asyncio.wait_for(call(), timeout=60)  # the bound of a broken build, not the assertion
    elapsed = loop.time() - started
    assert elapsed < limit, f"took {elapsed:.1f} s (limit {limit:.1f} s)"
    assert SECRET not in str(caught.value)
    return caught.value


async def _eventually(call: Callable[[], Awaitable[T]], within: float = 60.0) -> T:
    """The first result of ``call`` that is not a ``StorageError``, retried until ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            return await call()
        except StorageError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_a_cut_link_fails_within_the_command_timeout_and_the_storage_works_after(
    jailed: tuple[NetworkJail, PostgresServer],
) -> None:
    jail, server = jailed
    async with PostgresStorage.from_url(_url(server)) as storage:
        assert (await storage.enqueue("before", b"m")).accepted
        jail.cut()
        try:
            error = await _fails_within(lambda: storage.enqueue("during", b"m"), TIMEOUT + MARGIN)
            assert "command_timeout" in str(error) or "unreachable" in str(error)
            await _fails_within(lambda: storage.get("before"), TIMEOUT + MARGIN)
            await _fails_within(lambda: storage.cancel("before"), TIMEOUT + MARGIN)  # a transaction
            await _fails_within(lambda: storage.dequeue("w", lease_ms=60_000, timeout_ms=0), TIMEOUT + MARGIN)
        finally:
            jail.restore()
        # The same object, once the link is back: the dropped connections are replaced.
        record = await _eventually(lambda: storage.get("before"))
        assert record is not None and record.state is jobqueue.JobState.QUEUED
        assert (await _eventually(lambda: storage.enqueue("after", b"m"))).accepted
        claimed = {
            c.id
            for c in await _eventually(lambda: storage.dequeue("w", lease_ms=60_000, timeout_ms=0, limit=5))
        }
        assert {"before", "after"} <= claimed


async def test_a_silently_dead_listening_connection_is_dropped_and_listened_again(
    jailed: tuple[NetworkJail, PostgresServer],
) -> None:
    jail, server = jailed
    async with (
        PostgresStorage.from_url(_url(server)) as storage,
        storage.subscribe(Channel.EVENTS) as events,
    ):
        listener = storage._shared.listener
        loop = asyncio.get_running_loop()
        jail.cut()
        try:
            # The listening connection is idle: only the periodic check can notice the link died.
            limit = loop.time() + 10.0 + TIMEOUT + MARGIN  # PING_SECONDS + the check's own time limit
            while listener._drops == 0:
                assert loop.time() < limit, "the dead listening connection was not noticed"
                await asyncio.sleep(0.1)
        finally:
            jail.restore()
        # Listening again on a new connection (in the background): an event published then arrives.
        limit = loop.time() + 60
        while listener.mark(storage._wake) is None:
            assert loop.time() < limit, "the storage did not listen again"
            await asyncio.sleep(0.1)
        await _eventually(lambda: storage.enqueue("after", b"m"))
        event = await asyncio.wait_for(anext(aiter(events)), timeout=60)
        assert event.kind is EventKind.ENQUEUED and event.job_id == "after"


async def test_a_blocking_claim_waits_longer_than_the_command_timeout(postgres_url: str, schema: str) -> None:
    # It waits on LISTEN, not in a statement: the time limit is for each look, not for the wait.
    async with PostgresStorage(postgres_url, schema=schema, command_timeout=0.5) as storage:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await storage.dequeue("w", lease_ms=60_000, timeout_ms=2_000) == []
        assert loop.time() - started >= 1.9

        async def enqueue_later() -> None:
            await asyncio.sleep(1.0)  # the claim below must be blocked by then; no condition to wait on
            await storage.enqueue("late", b"m")

        task = asyncio.create_task(enqueue_later())
        claims = await storage.dequeue("w", lease_ms=60_000, timeout_ms=30_000)
        await task
        assert [c.id for c in claims] == ["late"]


@pytest.mark.parametrize("option", ["connect_timeout", "command_timeout"])
@pytest.mark.parametrize("value", ["-1", "0", "abc", "nan", "inf", ""])
def test_a_bad_timeout_names_the_option_and_no_secret(option: str, value: str) -> None:
    url = f"postgresql://app:{SECRET}@db.example/app?{option}={value}"
    for build in (PostgresStorage.from_url, jobqueue.storage_from_url):
        with pytest.raises(ValueError, match=option) as caught:
            build(url)
        assert SECRET not in str(caught.value)


def test_timeouts_are_read_from_the_url() -> None:
    storage = PostgresStorage.from_url("postgresql://h/db?connect_timeout=1.5&command_timeout=7")
    assert (storage._shared.options.connect_timeout, storage._shared.options.command_timeout) == (1.5, 7.0)
    assert "timeout" not in storage._shared.options.dsn  # ours, not passed to asyncpg's DSN
