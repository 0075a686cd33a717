"""Helpers for the Redis tests: the server tools on the path, skip-or-fail for missing binaries."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from servers import ServerKind, find_binary

__all__ = ["server_or_skip"]


def server_or_skip(kind: ServerKind) -> None:
    """Skip (or fail, with JOBQUEUE_REQUIRE_SERVERS=1) when the server binary is missing."""
    if find_binary(kind) is not None:
        return
    message = f"{kind}-server is not installed (tools/install-servers.sh)"
    if os.environ.get("JOBQUEUE_REQUIRE_SERVERS") == "1":
        pytest.fail(message)
    pytest.skip(message)
