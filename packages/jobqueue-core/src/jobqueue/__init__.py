"""jobqueue: a reliable job queue for Python."""

from ._backoff import Backoff
from ._durations import from_ms, now_ms, to_ms, validate_job_id
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
    map_exceptions,
)
from ._job import ExecutionContext, Job
from ._memory import MemoryStorage
from ._paging import page_jobs
from ._queue import Queue
from ._reaper import LeaderElection, Reaper
from ._serde import JsonSerde, MsgpackSerde, Serde
from ._storage import (
    DEFAULT_NAMESPACE,
    Channel,
    Claim,
    EnqueueOutcome,
    EventKind,
    JobPage,
    JobRecord,
    LeaderLock,
    Stalled,
    Storage,
    StorageEvent,
    TtlOutcome,
    WorkerRecord,
)
from ._types import CancelResult, EnqueueResult, JobState, JobStatus, UpdateTtlResult
from ._urls import available_schemes, parse_query, storage_from_url
from ._wire import INLINE_RESULT_LIMIT, decode_event, encode_event

__all__ = [
    # queue
    "Backoff",
    "ExecutionContext",
    "Job",
    "LeaderElection",
    "MemoryStorage",
    "Queue",
    "Reaper",
    # storage contract (for backend authors)
    "DEFAULT_NAMESPACE",
    "INLINE_RESULT_LIMIT",
    # types
    "CancelResult",
    "Channel",
    "Claim",
    # errors
    "CorruptDataError",
    "EnqueueOutcome",
    "EnqueueResult",
    "EventKind",
    "JobCancelledError",
    "JobFailedError",
    "JobNotFoundError",
    "JobPage",
    "JobQueueError",
    "JobRecord",
    "JobState",
    "JobStatus",
    "JobTimeoutError",
    # serdes
    "JsonSerde",
    "LeaderLock",
    "MaxRetriesError",
    "MsgpackSerde",
    "SerializationError",
    "Serde",
    "Stalled",
    "Storage",
    "StorageError",
    "StorageEvent",
    "TtlOutcome",
    "UpdateTtlResult",
    "WorkerRecord",
    # helpers
    "available_schemes",
    "decode_event",
    "encode_event",
    "from_ms",
    "map_exceptions",
    "now_ms",
    "page_jobs",
    "parse_query",
    "storage_from_url",
    "to_ms",
    "validate_job_id",
]
