"""The public surface is a decision: a change to ``__all__`` must change this test."""

import jobqueue

EXPECTED = {
    "__version__",
    # queue
    "Backoff", "ExecutionContext", "Job", "JobOptions", "LeaderElection", "Queue", "Reaper", "SyncQueue",
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


def test_all_is_pinned() -> None:
    assert set(jobqueue.__all__) == EXPECTED


def test_every_name_in_all_exists_and_is_documented() -> None:
    for name in jobqueue.__all__:
        obj = getattr(jobqueue, name)
        if callable(obj) and not isinstance(obj, type(jobqueue.CancelResult)):
            assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_core_imports_no_backend_library() -> None:
    import subprocess
    import sys

    code = "import sys, jobqueue; bad = {'redis', 'aiofiles', 'textual', 'watchfiles'} & set(sys.modules); print(sorted(bad))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"jobqueue-core imported {out.strip()}"
