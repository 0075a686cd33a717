"""The ``storage_url`` / ``storage`` fixtures: one test, every storage in ``STORAGE_KINDS``.

A test that touches storage takes ``storage`` (connected, in a namespace of its
own) or ``storage_url`` (for subprocesses and ``SyncQueue``) and runs once per kind.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jobqueue import Storage, storage_from_url

# Redis, Valkey and files join this list once their storages implement contract v2.
STORAGE_KINDS = ["memory"]

_MARKS = {"memory": pytest.mark.memory, "redis": pytest.mark.redis, "valkey": pytest.mark.valkey,
          "file": pytest.mark.file}  # fmt: skip


@pytest.fixture(params=[pytest.param(kind, marks=_MARKS[kind]) for kind in STORAGE_KINDS])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a fresh, empty storage of each kind (memory URLs are private to one process)."""
    kind: str = request.param
    if kind == "memory":
        return "memory://"
    if kind == "file":
        return f"file://{tmp_path / 'jobs'}"
    server: str = request.getfixturevalue(f"{kind}_url")
    return f"{server}?prefix=t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    """A connected storage of each kind, in a namespace of its own."""
    async with storage_from_url(storage_url).namespace(f"ns-{uuid.uuid4().hex[:8]}") as storage:
        yield storage
