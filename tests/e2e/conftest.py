"""Fixtures of the CLI tests: a handler module to run, shared storages (files, a throw-away redis-server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cli_support import APP
from tests.server_support import server_or_skip
from tools.servers import ServerProcess


@pytest.fixture(scope="module")
def redis_server() -> Iterator[str]:
    """A throw-away redis-server for this module (skips without the binary, unless servers are required)."""
    server_or_skip("redis")
    with ServerProcess.start_new("redis") as server:
        yield server.url


@pytest.fixture(
    params=[pytest.param("file", marks=pytest.mark.file), pytest.param("redis", marks=pytest.mark.redis)]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A storage URL other processes can share: a directory, or a fresh prefix on redis."""
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    server_url: str = request.getfixturevalue("redis_server")
    return f"{server_url}?prefix=cli-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path
