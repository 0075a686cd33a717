"""Shared by every test directory: skip, or fail when servers are required, without a server binary."""

from __future__ import annotations

import os

import pytest

from tools.servers import ServerKind, find_binary

__all__ = ["server_or_skip"]


def server_or_skip(kind: ServerKind) -> None:
    """Skip (or fail, with JOBQUEUE_REQUIRE_SERVERS=1) when the server binary is missing."""
    if find_binary(kind) is not None:
        return
    message = f"{kind}-server is not installed (tools/install-servers.sh)"
    if os.environ.get("JOBQUEUE_REQUIRE_SERVERS") == "1":
        pytest.fail(message)
    pytest.skip(message)
