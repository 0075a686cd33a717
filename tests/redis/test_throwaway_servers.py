"""The throw-away servers the tests start: a port taken between picking and binding is picked again."""

from __future__ import annotations

import socket

import pytest

from tests.server_support import server_or_skip
from tools.servers import PortTaken, ServerProcess, free_port, start_on_free_ports


@pytest.mark.redis
def test_a_server_whose_port_was_taken_meanwhile_starts_on_another_one() -> None:
    server_or_skip("redis")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", free_port()))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken, None])

        with ServerProcess("redis", port=taken) as unlucky, pytest.raises(PortTaken):
            unlucky.start()
        with start_on_free_ports(lambda: ServerProcess("redis", port=next(ports))) as server:
            assert server.running and server.port != taken
