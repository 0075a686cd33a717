"""``jobqueue failed list|retry|purge`` run in-process on a MemoryStorage (the e2e tests run the executable)."""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from jobqueue import Job, JobFailedError, JobState, MemoryStorage, Queue
from jobqueue._cli import build_parser
from jobqueue._cli.common import CliError
from jobqueue._cli.failed import failed_list, failed_purge, failed_retry
from jobqueue._cli.output import Output

pytestmark = pytest.mark.memory


@pytest.fixture
async def storage() -> AsyncIterator[MemoryStorage]:
    """A storage with three failed jobs (bad-0, bad-1, bad-2) and one completed one."""
    storage = MemoryStorage()
    queue: Queue[dict[str, Any], str] = Queue(storage, max_attempts=1)

    @queue.execute
    async def handle(job: Job[dict[str, Any]]) -> str:
        if job.payload.get("fail"):
            raise ValueError(f"bad input {job.id}")
        return "ok"

    async with queue:
        for n in range(3):
            with pytest.raises(JobFailedError):
                await queue.enqueue_and_wait(f"bad-{n}", {"fail": True}, timeout=30)
        await queue.enqueue_and_wait("good", {}, timeout=30)
        async with storage:  # keep it connected for the test
            yield storage


def args_of(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["failed", *argv, "--storage", "memory://"])


def output() -> tuple[Output, io.StringIO, io.StringIO]:
    stdout, stderr = io.StringIO(), io.StringIO()
    return Output(stdout, stderr), stdout, stderr


async def test_list_shows_failed_jobs_newest_first(storage: MemoryStorage) -> None:
    out, stdout, _ = output()
    assert await failed_list(storage, args_of("list"), out) == 0
    text = stdout.getvalue()
    assert "failed jobs in queue 'default'" in text
    assert text.index("bad-2") < text.index("bad-1") < text.index("bad-0")
    assert "ValueError: bad input bad-1" in text
    assert "good" not in text


async def test_list_json_and_limit(storage: MemoryStorage) -> None:
    out, stdout, _ = output()
    assert await failed_list(storage, args_of("list", "--json", "--limit", "2"), out) == 0
    rows = json.loads(stdout.getvalue())
    assert [row["id"] for row in rows] == ["bad-2", "bad-1"]
    assert rows[0]["error_type"] == "ValueError"
    assert rows[0]["error"] == "bad input bad-2"
    assert rows[0]["attempts"] == 1
    assert rows[0]["failed_at"].endswith("+00:00")


async def test_retry_named_jobs(storage: MemoryStorage) -> None:
    out, stdout, _ = output()
    assert await failed_retry(storage, args_of("retry", "bad-0", "bad-0", "--json"), out) == 0
    assert json.loads(stdout.getvalue()) == {"retried": ["bad-0"], "not_failed": []}
    record = await storage.get("bad-0")
    assert record is not None and record.state is JobState.QUEUED and record.attempts == 0
    out, stdout, _ = output()
    # a job that is not failed is reported, and the exit code says so
    assert await failed_retry(storage, args_of("retry", "good", "bad-1"), out) == 1
    assert "retried bad-1" in stdout.getvalue()
    assert "not retried good: it is not a failed job" in stdout.getvalue()


async def test_retry_all_asks_first(storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no answer: no
    out, _, stderr = output()
    with pytest.raises(CliError, match="not confirmed; nothing was changed"):
        await failed_retry(storage, args_of("retry", "--all"), out)
    assert "retry 3 failed job(s) in queue 'default'? [y/N]" in stderr.getvalue()
    assert (await storage.counts())[JobState.FAILED] == 3
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    out, stdout, _ = output()
    assert await failed_retry(storage, args_of("retry", "--all"), out) == 0
    assert stdout.getvalue().count("retried bad-") == 3
    counts = await storage.counts()
    assert counts[JobState.FAILED] == 0 and counts[JobState.QUEUED] == 3


async def test_purge_asks_unless_yes(storage: MemoryStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    out, _, stderr = output()
    with pytest.raises(CliError, match="not confirmed"):
        await failed_purge(storage, args_of("purge"), out)
    assert "delete 3 failed job(s)" in stderr.getvalue()
    out, stdout, stderr = output()
    assert await failed_purge(storage, args_of("purge", "--yes", "--json"), out) == 0
    assert json.loads(stdout.getvalue()) == {"purged": 3}
    assert stderr.getvalue() == ""
    assert (await storage.counts())[JobState.FAILED] == 0
    assert (await storage.counts())[JobState.COMPLETED] == 1  # purge touches failed jobs only
    out, stdout, _ = output()
    assert await failed_purge(storage, args_of("purge"), out) == 0  # nothing to delete: no question
    assert "purged 0 failed job(s)" in stdout.getvalue()


def test_worker_options_parse() -> None:
    args = build_parser().parse_args(
        ["worker", "app:handle", "--max-attempts", "5", "--job-timeout", "2.5",
         "--schedule", "nightly=0 3 * * *", "--schedule", "often = */5 * * * * *"]
    )  # fmt: skip
    assert args.max_attempts == 5
    assert args.job_timeout == 2.5
    assert args.schedule == [("nightly", "0 3 * * *"), ("often", "*/5 * * * * *")]
