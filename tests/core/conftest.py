"""``storage`` and ``storage_url``: the root ``backend`` table as a connected storage, or as a URL.

A test that touches storage takes ``storage`` (connected, in a namespace of its
own) or ``storage_url`` (for ``SyncQueue`` and subprocesses) and runs once per
backend of ``tests/conftest.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from jobqueue import Storage

from tests.conftest import Backend


@pytest.fixture
def storage_url(backend: Backend) -> str:
    """A URL of a fresh, empty storage of each kind (memory URLs are private to one process)."""
    if backend.kind == "memory":
        return "memory://"
    if backend.kind == "file":
        return backend.directory.as_uri()
    if backend.kind == "postgres":
        return f"{backend.server_url}?schema={backend.prefix}"
    return f"{backend.server_url}?prefix={backend.prefix}"


@pytest.fixture
async def storage(backend: Backend) -> AsyncIterator[Storage]:
    """A connected storage of each kind, in a namespace of its own."""
    async with backend.make().namespace(f"ns-{uuid.uuid4().hex[:8]}") as storage:
        yield storage
