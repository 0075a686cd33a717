"""Messages the dashboard's widgets and screens exchange."""

from __future__ import annotations

from jobqueue import JobState
from textual.message import Message

__all__ = ["DataChanged", "ProgressReported", "QueueSwitched", "StateFilterChosen"]


class DataChanged(Message):
    """The storage changed (events arrived, an action ran, or the periodic fallback fired).

    ``job_ids`` names the jobs the events were about; None means anything may
    have changed.
    """

    def __init__(self, job_ids: frozenset[str] | None = None) -> None:
        super().__init__()
        self.job_ids = job_ids

    def concerns(self, job_id: str) -> bool:
        """True when the change may affect ``job_id``."""
        return self.job_ids is None or job_id in self.job_ids


class StateFilterChosen(Message):
    """A state was clicked in the counts bar: show only jobs in ``state`` (None: all)."""

    def __init__(self, state: JobState | None) -> None:
        super().__init__()
        self.state = state


class QueueSwitched(Message):
    """The dashboard now watches the namespace ``name``."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class ProgressReported(Message):
    """A handler reported progress ``data`` (result serde bytes) for ``job_id``."""

    def __init__(self, job_id: str, data: bytes) -> None:
        super().__init__()
        self.job_id = job_id
        self.data = data
