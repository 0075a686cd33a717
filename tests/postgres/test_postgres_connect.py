"""Connecting: a Unix socket through ``?host=``, an unreachable server as a StorageError, connect reference counts."""

from __future__ import annotations

import socket

import pytest
from jobqueue.storage import StorageError
from jobqueue_postgres import PostgresStorage

from tests.server_support import postgres_or_skip
from tools.postgres_server import PostgresServer
from tools.servers import PortTaken, free_port, start_on_free_ports

pytestmark = pytest.mark.postgres


async def test_a_unix_socket_through_the_host_option(own_server: PostgresServer) -> None:
    url = f"postgresql:///postgres?host={own_server.dir}&port={own_server.port}&user=postgres&schema=sock"
    async with PostgresStorage.from_url(url) as storage:
        assert (await storage.enqueue("a", b"m")).accepted
        assert await storage.get("a") is not None


async def test_an_unreachable_server_is_a_storage_error_and_nothing_stays_open() -> None:
    storage = PostgresStorage(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(StorageError, match="postgres connect"):
        await storage.connect()
    with pytest.raises(StorageError, match="not connected"):
        await storage.get("a")


async def test_views_share_one_pool_and_the_last_disconnect_closes_it(storage: PostgresStorage) -> None:
    other = storage.namespace("other")
    await other.connect()
    await other.disconnect()
    assert (await storage.enqueue("still", b"m")).accepted  # the fixture's reference keeps it open
    pool = storage._shared.pool
    assert other._shared.pool is pool


def test_a_test_server_whose_port_was_taken_meanwhile_starts_on_another_one() -> None:
    postgres_or_skip()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", free_port()))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken, None])

        with PostgresServer(port=taken) as unlucky, pytest.raises(PortTaken):
            unlucky.start()
        with start_on_free_ports(lambda: PostgresServer(port=next(ports))) as server:
            assert server.running and server.port != taken
