"""jobqueue: a reliable job queue for Python.

This module is the application API. Storage authors use ``jobqueue.storage``.
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from ._backoff import Backoff
from ._contract.storage import Storage
from ._errors import (
    CorruptDataError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    JobQueueError,
    JobTimeoutError,
    MaxRetriesError,
    SerializationError,
    StorageError,
)
from ._ids import content_id, new_id
from ._job import ExecutionContext, Job
from ._memory import MemoryStorage
from ._queue import Queue
from ._reaper import LeaderElection, Reaper
from ._schedule_info import ScheduleInfo, schedules_of
from ._serde import JsonSerde, MsgpackSerde, Serde
from ._sync import SyncQueue
from ._types import CancelResult, EnqueueResult, JobOptions, JobState, JobStatus, UpdateTtlResult
from ._urls import available_schemes, storage_from_url

try:
    __version__ = _version("jobqueue-core")
except _PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    # queue
    "Backoff",
    "ExecutionContext",
    "Job",
    "JobOptions",
    "LeaderElection",
    "Queue",
    "Reaper",
    "SyncQueue",
    # schedules on show
    "ScheduleInfo",
    "schedules_of",
    # ids
    "content_id",
    "new_id",
    # storages
    "MemoryStorage",
    "Storage",
    "available_schemes",
    "storage_from_url",
    # values
    "CancelResult",
    "EnqueueResult",
    "JobState",
    "JobStatus",
    "UpdateTtlResult",
    # serdes
    "JsonSerde",
    "MsgpackSerde",
    "Serde",
    # errors
    "CorruptDataError",
    "JobCancelledError",
    "JobFailedError",
    "JobNotFoundError",
    "JobQueueError",
    "JobTimeoutError",
    "MaxRetriesError",
    "SerializationError",
    "StorageError",
]
