"""Redis exceptions become ``jobqueue.StorageError`` here, once."""

from __future__ import annotations

from contextlib import AbstractContextManager

from jobqueue import JobQueueError, StorageError
from jobqueue.storage import map_exceptions
from redis.exceptions import RedisClusterException, RedisError

__all__ = ["redis_errors"]

_MAPPING: dict[type[BaseException], type[JobQueueError]] = {
    RedisError: StorageError,
    RedisClusterException: StorageError,  # a cluster client's own errors (slot not covered, ...)
    OSError: StorageError,  # socket errors that redis-py lets through, and TimeoutError
}


def redis_errors(operation: str) -> AbstractContextManager[None]:
    """Translate redis-py and socket errors raised by ``operation`` into ``StorageError``."""
    return map_exceptions(_MAPPING, f"redis {operation}")
