"""``MemoryStorage``: the storage contract in one process."""

from .storage import MemoryStorage

__all__ = ["MemoryStorage"]
