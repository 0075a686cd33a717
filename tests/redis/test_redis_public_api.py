"""The public surface of jobqueue_redis is a visible decision."""

from __future__ import annotations

import jobqueue_redis
from jobqueue import LeaderLock, Storage, available_schemes


def test_all_is_pinned() -> None:
    assert jobqueue_redis.__all__ == ["Keys", "RedisStorage"]
    assert all(getattr(jobqueue_redis, name) for name in jobqueue_redis.__all__)


def test_storage_capabilities_and_schemes() -> None:
    assert issubclass(jobqueue_redis.RedisStorage, Storage)
    assert issubclass(jobqueue_redis.RedisStorage, LeaderLock)
    assert {"redis", "rediss", "valkey", "valkeys"} <= set(available_schemes())
