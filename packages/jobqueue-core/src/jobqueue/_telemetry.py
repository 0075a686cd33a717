"""Where the core reports what happens to jobs: the observer hooks behind OpenTelemetry and Prometheus.

The core calls an ``Observer`` at four points: around an enqueue (``send``),
around one attempt on a worker (``process``), when the reaper recovers
stalled jobs (``stalled``) and while a queue runs on a storage with
``Monitoring`` (``watch``, for queue depth). A queue with no observer pays one
``is None`` test per job.

``default_observer()`` is the OpenTelemetry observer when ``opentelemetry`` is
importable (the ``jobqueue-core[otel]`` extra), else ``None``: the core never
imports ``opentelemetry`` otherwise. The Prometheus observer of
``jobqueue worker --metrics-port`` is attached with ``add_observer``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from ._contract.storage import Storage
    from ._queue import Queue
    from ._reaper import Reaper

__all__ = [
    "Observer",
    "Observers",
    "Outcome",
    "ProcessScope",
    "SendScope",
    "add_observer",
    "default_observer",
    "error_type",
]

Outcome = Literal["completed", "retried", "failed", "requeued", "lost"]
"""How one attempt ended: ``retried`` is a failure with a retry due, ``lost`` an outcome not stored."""


class SendScope(Protocol):
    """One enqueue call in progress (one span for a batch)."""

    @property
    def headers(self) -> dict[str, str] | None:
        """Headers to store in every envelope of the call (trace context), or None."""

    def end(self, accepted: Sequence[bool] | None, error: BaseException | None) -> None:
        """The storage answered (``accepted`` per job) or the call raised ``error``."""


class ProcessScope(Protocol):
    """One attempt in progress on a worker."""

    def end(self, outcome: Outcome, error: BaseException | None) -> None:
        """The attempt ended; ``error`` is what the handler raised (or why the job failed)."""


class Observer(Protocol):
    """What the core tells an observer. Calls must be cheap and must not raise."""

    def send(self, queue: str, job_id: str | None, count: int) -> SendScope:
        """An enqueue of ``count`` jobs on ``queue`` starts (``job_id`` when there is one job)."""

    def process(
        self, queue: str, job_id: str, attempt: int, headers: Mapping[str, str], created_at_ms: int | None
    ) -> ProcessScope:
        """An attempt starts; ``headers`` come from the producer, ``created_at_ms`` is the enqueue time."""

    def stalled(self, queue: str, count: int) -> None:
        """The reaper recovered ``count`` stalled jobs of ``queue``."""

    def watch(self, storage: Storage) -> Callable[[], None]:
        """A queue runs on ``storage`` (which has ``Monitoring``); returns the function that stops watching."""


@dataclasses.dataclass(frozen=True, slots=True)
class _ManyScopes:
    scopes: tuple[SendScope | ProcessScope, ...]
    headers: dict[str, str] | None

    def end(self, first: object, error: BaseException | None) -> None:
        for scope in self.scopes:
            scope.end(first, error)  # type: ignore[arg-type]  # each scope gets the value it expects


@dataclasses.dataclass(frozen=True, slots=True)
class Observers:
    """Several observers as one (OpenTelemetry and Prometheus in one worker)."""

    members: tuple[Observer, ...]

    def send(self, queue: str, job_id: str | None, count: int) -> SendScope:
        """Every member's send scope; the headers of all of them."""
        scopes = tuple(member.send(queue, job_id, count) for member in self.members)
        headers: dict[str, str] = {}
        for scope in scopes:
            headers.update(scope.headers or {})
        return _ManyScopes(scopes, headers or None)

    def process(
        self, queue: str, job_id: str, attempt: int, headers: Mapping[str, str], created_at_ms: int | None
    ) -> ProcessScope:
        """Every member's process scope."""
        scopes = tuple(m.process(queue, job_id, attempt, headers, created_at_ms) for m in self.members)
        return _ManyScopes(scopes, None)

    def stalled(self, queue: str, count: int) -> None:
        """Tell every member."""
        for member in self.members:
            member.stalled(queue, count)

    def watch(self, storage: Storage) -> Callable[[], None]:
        """Every member watches; the returned function stops them all."""
        stops = [member.watch(storage) for member in self.members]

        def stop() -> None:
            for each in stops:
                each()

        return stop


_otel_available: bool | None = None


def default_observer() -> Observer | None:
    """The OpenTelemetry observer when ``opentelemetry-api`` is installed, else None (nothing imported)."""
    global _otel_available
    if _otel_available is None:
        try:
            _otel_available = importlib.util.find_spec("opentelemetry.trace") is not None
        except ImportError:  # no "opentelemetry" package at all
            _otel_available = False
    if not _otel_available:
        return None
    from ._otel import OTelObserver

    return OTelObserver.shared()


def add_observer(target: Queue[Any, Any] | Reaper, observer: Observer) -> None:
    """Attach ``observer`` to a queue (before ``start``) or a reaper, beside the one it has."""
    from ._queue import Queue

    current = target.config.observer if isinstance(target, Queue) else target._observer
    combined: Observer = observer if current is None else Observers((current, observer))
    if isinstance(target, Queue):
        if target.running:
            raise RuntimeError("add observers before the queue starts")
        target.config = dataclasses.replace(target.config, observer=combined)
    else:
        target._observer = combined


def error_type(error: BaseException | None) -> str | None:
    """The ``error.type`` of OpenTelemetry's conventions: the exception's qualified class name."""
    if error is None:
        return None
    cls = type(error)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    if module.startswith("jobqueue._"):  # our errors by their public name
        module = "jobqueue"
    return f"{module}.{cls.__qualname__}"
