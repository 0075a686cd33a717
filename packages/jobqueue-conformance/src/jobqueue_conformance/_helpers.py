"""Helpers shared by the suites: waiting on conditions, reading events, claiming jobs, capabilities."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import pytest
from jobqueue.storage import (
    Capability,
    ControlChannel,
    LeaderLock,
    Monitoring,
    Storage,
    StorageEvent,
    capabilities,
)

__all__ = [
    "CLOCK_SKEW_MS",
    "LEASE_MS",
    "LONG_TTL_MS",
    "WAKE_BOUND_S",
    "claim",
    "monitoring_of",
    "next_event",
    "refused_with_value_error",
    "require_control_channel",
    "require_leader_lock",
    "require_monitoring",
    "wait_until",
]

LEASE_MS = 30_000
"""A lease long enough never to run out during a test."""

LONG_TTL_MS = 600_000
"""A result TTL long enough never to run out during a test."""

CLOCK_SKEW_MS = 5_000
"""How far a storage's clock (a server's) may be from this process's when checking timestamps."""

WAKE_BOUND_S = 2.0
"""How soon a blocked ``dequeue`` must return after the job it waits for becomes ready.

The rule is "wakes as soon as a job is enqueued", against a 10-second
``timeout_ms``: a backend that waits out its timeout takes five times longer.
Event-driven backends wake in a millisecond or two; the bound is generous on
purpose (a loaded two-core CI machine stalls for hundreds of milliseconds),
and the wake-up latency itself is measured by ``tools/bench.py``.
"""

_MIXINS = {
    Capability.MONITORING: "Monitoring",
    Capability.LEADER_LOCK: "LeaderLock",
    Capability.CONTROL_CHANNEL: "ControlChannel",
}


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    *,
    message: str,
    timeout: float = 30.0,
    interval: float = 0.01,
) -> None:
    """Poll ``check`` until it returns True; fail with ``message`` after ``timeout`` seconds.

    The default is generous on purpose: a rule that holds passes as soon as it
    holds, and a loaded machine must not turn a slow pass into a failure.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() >= deadline:
            pytest.fail(f"{message} (still not true after {timeout} s)")
        await asyncio.sleep(interval)


async def next_event(
    events: AsyncIterator[StorageEvent], *, message: str, timeout: float = 2.0
) -> StorageEvent:
    """The next event of a subscription; fail with ``message`` when none comes within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            return await anext(events)
    except TimeoutError:
        pytest.fail(f"{message} (no event within {timeout} s)")
    except StopAsyncIteration:
        pytest.fail(f"{message} (the subscription ended)")


async def claim(
    storage: Storage, job_id: str, worker_id: str = "worker-1", *, lease_ms: int = LEASE_MS
) -> None:
    """Enqueue ``job_id`` on an empty queue and claim it for ``worker_id``."""
    outcome = await storage.enqueue(job_id, b"message:" + job_id.encode())
    assert outcome.accepted, f"rule: enqueue accepts a new id ({job_id!r})"
    claims = await storage.dequeue(worker_id, lease_ms=lease_ms, timeout_ms=1000)
    assert [c.id for c in claims] == [job_id], f"rule: dequeue claims the only ready job ({job_id!r})"


def _require(storage: Storage, capability: Capability) -> None:
    if capability not in capabilities(storage):
        pytest.skip(
            f"{type(storage).__name__} lacks the optional capability {capability.value!r} "
            f"(jobqueue.storage.{_MIXINS[capability]})"
        )


def require_monitoring(storage: Storage) -> Monitoring:
    """The storage as ``Monitoring``, or skip the test naming the missing capability."""
    _require(storage, Capability.MONITORING)
    return cast(Monitoring, storage)  # what capabilities() checked


def require_leader_lock(storage: Storage) -> LeaderLock:
    """The storage as a ``LeaderLock``, or skip the test naming the missing capability."""
    _require(storage, Capability.LEADER_LOCK)
    return cast(LeaderLock, storage)


def require_control_channel(storage: Storage) -> ControlChannel:
    """The storage as a ``ControlChannel``, or skip the test naming the missing capability."""
    _require(storage, Capability.CONTROL_CHANNEL)
    return cast(ControlChannel, storage)


def monitoring_of(storage: Storage) -> Monitoring | None:
    """The storage as ``Monitoring`` when it declares it: for checks a test adds only when it can."""
    return cast(Monitoring, storage) if Capability.MONITORING in capabilities(storage) else None


async def refused_with_value_error(call: Awaitable[object], *, rule: str, naming: str) -> None:
    """Await ``call`` and fail with ``rule`` unless it raises ``ValueError`` whose message names ``naming``."""
    try:
        await call
    except ValueError as exc:
        if naming not in str(exc):
            pytest.fail(f"{rule} (the ValueError {str(exc)!r} does not name {naming!r})")
    else:
        pytest.fail(f"{rule} (no ValueError was raised)")
