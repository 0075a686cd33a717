"""The public surface of jobqueue_redis is a visible decision."""

from __future__ import annotations

import jobqueue_redis
from jobqueue import available_schemes
from jobqueue.storage import Capability, Storage, capabilities


def test_all_is_pinned() -> None:
    assert jobqueue_redis.__all__ == ["Keys", "RedisStorage"]
    assert all(getattr(jobqueue_redis, name) for name in jobqueue_redis.__all__)


def test_storage_capabilities_and_schemes() -> None:
    assert issubclass(jobqueue_redis.RedisStorage, Storage)
    assert capabilities(jobqueue_redis.RedisStorage("redis://h:1/0")) == {
        Capability.MONITORING,
        Capability.LEADER_LOCK,
        Capability.CONTROL_CHANNEL,
    }
    assert {"redis", "rediss", "valkey", "valkeys"} <= set(available_schemes())


def test_the_package_imports_only_the_public_jobqueue_modules() -> None:
    from importlib import resources

    for source in resources.files("jobqueue_redis").iterdir():
        if source.name.endswith(".py"):
            for line in source.read_text(encoding="utf-8").splitlines():
                if line.startswith(("from jobqueue", "import jobqueue")) and not line.startswith(
                    ("from jobqueue_redis", "from jobqueue import", "from jobqueue.storage import")
                ):
                    raise AssertionError(f"{source.name}: {line}")
