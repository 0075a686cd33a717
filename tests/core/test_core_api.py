"""The public surfaces are decisions: a change to either ``__all__`` must change this test."""

import ast
import subprocess
import sys
from pathlib import Path

import jobqueue
import jobqueue.storage

ROOT = Path(__file__).resolve().parents[2]

APPLICATION_API = {
    "__version__",
    # queue
    "Backoff", "ExecutionContext", "Job", "JobOptions", "LeaderElection", "Queue", "Reaper", "SyncQueue",
    # schedules on show
    "ScheduleInfo", "schedules_of",
    # ids
    "content_id", "new_id",
    # storages
    "MemoryStorage", "Storage", "available_schemes", "storage_from_url",
    # values
    "CancelResult", "EnqueueResult", "JobState", "JobStatus", "UpdateTtlResult",
    # serdes
    "JsonSerde", "MsgpackSerde", "Serde",
    # errors
    "CorruptDataError", "JobCancelledError", "JobFailedError", "JobNotFoundError", "JobQueueError",
    "JobTimeoutError", "MaxRetriesError", "SerializationError", "StorageError",
}  # fmt: skip

STORAGE_AUTHOR_API = {
    # the contract
    "Capability", "ControlChannel", "LeaderLock", "Migrations", "Monitoring", "Storage",
    "TransactionalEnqueue", "capabilities",
    # records
    "DEFAULT_NAMESPACE", "Channel", "Claim", "EnqueueOutcome", "EventKind", "Finish", "FinishKind",
    "JobPage", "JobRecord", "JobState", "NewJob", "Recovery", "Revoked", "Stalled", "StorageEvent", "TtlOutcome",
    "WorkerRecord",
    # rules, codecs, helpers
    "rules", "EventBuffer", "MAX_PENDING_EVENTS", "Envelope", "decode_envelope", "decode_event", "encode_envelope", "encode_event",
    "MAX_SECONDS", "check_ms", "check_new_job", "cursor_of", "now_ms", "page_jobs", "parse_cursor", "parse_query",
    "redact_url",
    "validate_job_id",
    "CorruptDataError", "StorageError", "cancel_and_wait", "map_exceptions",
}  # fmt: skip


def test_application_api_is_pinned() -> None:
    assert set(jobqueue.__all__) == APPLICATION_API


def test_storage_author_api_is_pinned() -> None:
    assert set(jobqueue.storage.__all__) == STORAGE_AUTHOR_API


def test_every_public_name_exists_and_is_documented() -> None:
    for module in (jobqueue, jobqueue.storage):
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj) and not isinstance(obj, type(jobqueue.CancelResult)):
                assert (obj.__doc__ or "").strip(), f"{module.__name__}.{name} has no docstring"


def test_the_contract_has_at_most_15_abstract_members() -> None:
    assert len(jobqueue.Storage.__abstractmethods__) <= 15, sorted(jobqueue.Storage.__abstractmethods__)


def test_no_private_jobqueue_import_outside_jobqueue_core() -> None:
    offenders = []
    roots = [p for p in (ROOT / "packages").iterdir() if p.name != "jobqueue-core"]
    roots += [ROOT / "tools", ROOT / "examples"]
    for path in (file for root in roots if root.exists() for file in root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from jobqueue._x import y` and `from jobqueue import _x` alike
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            offenders += [
                f"{path.relative_to(ROOT)}: {name}"
                for name in names
                if name.startswith(("jobqueue._", "jobqueue.storage._"))
            ]
    assert offenders == []


def test_tests_import_helpers_through_the_configured_pythonpath_not_sys_path() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        if path != Path(__file__)
        and ("sys.path.insert" in path.read_text() or "sys.path.append" in path.read_text())
    ]
    assert offenders == [], "pytest's `pythonpath` already makes tools/ and tests/ importable"


def test_core_imports_no_backend_library() -> None:
    code = "import sys, jobqueue, jobqueue.storage; bad = {'redis', 'asyncpg', 'aiofiles', 'textual', 'watchfiles'} & set(sys.modules); print(sorted(bad))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"jobqueue-core imported {out.strip()}"
