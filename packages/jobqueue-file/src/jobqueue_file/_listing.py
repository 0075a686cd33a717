"""A cached listing of an entry directory, so a claim does not list a long queue every time."""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections import deque

from ._atomic import named

__all__ = ["Listing"]

_RELIST_SECONDS = 0.25  # how stale a cached listing may get before entries from other processes show


class Listing:
    """A cached, sorted listing of one entry directory, consumed from the front.

    Names in ``skip`` (entries whose record is unreadable) are left out, so
    one bad file never hides the entries behind it.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.skip: set[str] = set()
        self._names: deque[str] = deque()
        self._at = 0.0
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Forget the cached listing: the next read lists the directory again."""
        with self._lock:
            self._at = 0.0

    def add(self, name: str) -> None:
        """Insert an entry this process just created, in order (a fresh cache stays exact)."""
        with self._lock:
            if self._at and name not in self.skip:
                bisect.insort(self._names, name)

    def discard(self, name: str) -> None:
        """Forget an entry this process just moved away."""
        with self._lock:
            if self._names and name in self._names:
                self._names.remove(name)

    def names(self) -> list[str]:
        """The whole listing, refreshed when stale (for the schedule, read but not consumed)."""
        with self._lock:
            if time.monotonic() - self._at > _RELIST_SECONDS:
                self._refresh()
            return list(self._names)

    def pop(self, *, refresh: bool) -> str | None:
        """The next name to try (``refresh``: list the directory again when none is left)."""
        with self._lock:
            if (refresh and not self._names) or time.monotonic() - self._at > _RELIST_SECONDS:
                self._refresh()
            return self._names.popleft() if self._names else None

    def _refresh(self) -> None:
        try:
            listed = os.listdir(self.directory)
        except OSError as exc:
            raise named(exc, self.directory) from exc
        self._names = deque(
            sorted(name for name in listed if not name.startswith(".") and name not in self.skip)
        )
        self._at = time.monotonic()
