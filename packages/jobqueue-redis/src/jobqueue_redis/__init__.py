"""jobqueue_redis: the Redis / Valkey storage for jobqueue.

``RedisStorage("redis://127.0.0.1:6379/0", prefix="jq", name="default")`` or
``jobqueue.storage_from_url("redis://...?prefix=jq")`` (also ``rediss://``,
``valkey://``, ``valkeys://``).
"""

from ._keys import Keys
from ._storage import RedisStorage

__all__ = [
    "Keys",
    "RedisStorage",
]
