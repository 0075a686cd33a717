"""Event callbacks: ``queue.on(name, callback)``. A failing callback never breaks the caller."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["Emitter", "Unsubscribe"]

Unsubscribe = Callable[[], None]


class Emitter:
    """Synchronous fan-out of named events to callbacks."""

    def __init__(self, names: frozenset[str], logger: logging.Logger) -> None:
        self._names = names
        self._logger = logger
        self._callbacks: dict[str, list[Callable[..., Any]]] = {}

    def on(self, name: str, callback: Callable[..., Any]) -> Unsubscribe:
        """Call ``callback(*args)`` on every ``name`` event; return a function that unsubscribes."""
        if name not in self._names:
            raise ValueError(f"unknown event {name!r}; known events: {', '.join(sorted(self._names))}")
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        if inspect.iscoroutinefunction(callback):
            raise TypeError("event callbacks must be plain functions (schedule async work from them)")
        self._callbacks.setdefault(name, []).append(callback)

        def unsubscribe() -> None:
            callbacks = self._callbacks.get(name, [])
            if callback in callbacks:
                callbacks.remove(callback)

        return unsubscribe

    def emit(self, name: str, *args: Any) -> None:
        """Call every callback of ``name``; a callback that raises is logged and reported as ``error``."""
        callbacks = self._callbacks.get(name)
        if not callbacks:
            return  # the common case, once per job: nobody listens
        for callback in tuple(callbacks):
            try:
                callback(*args)
            except Exception as exc:
                self._logger.exception("event callback for %r raised", name)
                if name != "error":
                    self.emit("error", exc)
