"""The public toolkit for storage authors: the contract, its records and rules, codecs and helpers.

An application needs only ``jobqueue``; a backend needs only this module::

    from jobqueue.storage import Storage, JobRecord, rules

A backend subclasses ``Storage`` and writes its 15 abstract members (the
primitives), adds capability mixins (``Monitoring``, ``LeaderLock``,
``ControlChannel``) for what it offers, and applies the pure functions of
``rules`` for every state change. The conformance suite
(``jobqueue-conformance``) checks the result.
"""

from ._contract import rules
from ._contract.capabilities import (
    Capability,
    ControlChannel,
    LeaderLock,
    Migrations,
    Monitoring,
    TransactionalEnqueue,
    capabilities,
)
from ._contract.checks import check_ms, check_new_job
from ._contract.codecs import Envelope, decode_envelope, decode_event, encode_envelope, encode_event
from ._contract.events import MAX_PENDING_EVENTS, EventBuffer
from ._contract.paging import cursor_of, page_jobs, parse_cursor
from ._contract.records import (
    DEFAULT_NAMESPACE,
    Channel,
    Claim,
    EnqueueOutcome,
    EventKind,
    Finish,
    FinishKind,
    JobPage,
    JobRecord,
    NewJob,
    Recovery,
    Revoked,
    Stalled,
    StorageEvent,
    TtlOutcome,
    WorkerRecord,
)
from ._contract.storage import Storage
from ._durations import MAX_SECONDS, now_ms, validate_job_id
from ._errors import CorruptDataError, StorageError, map_exceptions
from ._tasks import cancel_and_wait
from ._types import JobState
from ._urls import parse_query, redact_url

__all__ = [
    # the contract
    "Capability",
    "ControlChannel",
    "LeaderLock",
    "Migrations",
    "Monitoring",
    "Storage",
    "TransactionalEnqueue",
    "capabilities",
    # records
    "DEFAULT_NAMESPACE",
    "Channel",
    "Claim",
    "EnqueueOutcome",
    "EventKind",
    "Finish",
    "FinishKind",
    "JobPage",
    "JobRecord",
    "JobState",
    "NewJob",
    "Recovery",
    "Revoked",
    "Stalled",
    "StorageEvent",
    "TtlOutcome",
    "WorkerRecord",
    # rules of a job's life
    "rules",
    # codecs and event delivery
    "EventBuffer",
    "MAX_PENDING_EVENTS",
    "Envelope",
    "decode_envelope",
    "decode_event",
    "encode_envelope",
    "encode_event",
    # helpers
    "MAX_SECONDS",
    "check_ms",
    "check_new_job",
    "cursor_of",
    "now_ms",
    "page_jobs",
    "parse_cursor",
    "parse_query",
    "redact_url",
    "validate_job_id",
    # errors and tasks
    "CorruptDataError",
    "StorageError",
    "cancel_and_wait",
    "map_exceptions",
]
