"""The CLI of issue 13, as real processes: ``failed``, worker ``--schedule``/``--max-attempts``/``--job-timeout``,
and progress in ``status``."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from jobqueue import Job, JobFailedError, Queue, storage_from_url

from tests.e2e.cli_support import JOBQUEUE, assert_error, cli_env, run_cli, spawn, storage_args

APP = textwrap.dedent(
    """
    import asyncio

    async def handle(job):
        payload = job.payload or {}
        await job.report_progress({"step": 1, "of": 2})
        if payload.get("hold"):
            await asyncio.sleep(payload["hold"])
        if payload.get("fail"):
            raise ValueError(f"boom {job.id}")
        return {"id": job.id}

    async def slow(job):
        await asyncio.sleep(30)
    """
)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "features_app.py").write_text(APP)
    return tmp_path


def answering(answer: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``jobqueue ARGS`` with ``answer`` typed at the confirmation question."""
    return subprocess.run(
        [str(JOBQUEUE), *args], cwd=cwd, env=cli_env(), input=answer + "\n", capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip


def failed_ids(target: list[str], app: Path) -> list[str]:
    listed = run_cli("failed", "list", *target, "--json", cwd=app)
    assert listed.returncode == 0, listed.stderr
    return [row["id"] for row in json.loads(listed.stdout)]


# ------------------------------------------------------------ worker (one process)


@pytest.mark.memory
def test_worker_runs_schedules(app: Path) -> None:
    args = ["worker", "features_app:handle", "--storage", "memory://", "--schedule", "beat=* * * * * *"]
    with spawn(*args, cwd=app) as (proc, reader):
        assert "schedule 'beat': * * * * * * (UTC)" in reader.wait_for("schedule 'beat'")
        first = reader.wait_for("job 'schedule:beat:")
        tick = int(re.search(r"schedule:beat:(\d+)", first).group(1))  # type: ignore[union-attr]
        assert tick % 1000 == 0
        reader.wait_for(f"job 'schedule:beat:{tick + 1000}' completed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@pytest.mark.memory
def test_worker_job_timeout_and_max_attempts(app: Path) -> None:
    args = ["worker", "features_app:slow", "--storage", "memory://", "--schedule", "s=* * * * * *",
            "--job-timeout", "0.3", "--max-attempts", "2"]  # fmt: skip
    with spawn(*args, cwd=app) as (proc, reader):
        line = reader.wait_for("attempt 1 failed: JobTimeoutError")
        job_id = re.search(r"job '([^']+)'", line).group(1)  # type: ignore[union-attr]
        assert "exceeded job_timeout (0.3s)" in line
        assert "failed: JobTimeoutError" in reader.wait_for(f"job '{job_id}' failed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@pytest.mark.memory
@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("nightly=61 3 * * *", "--schedule nightly=61 3 * * *: cron '61 3 * * *' is not a valid"),
        ("nightly=* *", "--schedule nightly=* *: cron must have 5 fields"),
    ],
)
def test_worker_refuses_a_bad_schedule(app: Path, schedule: str, message: str) -> None:
    result = run_cli(
        "worker", "features_app:handle", "--storage", "memory://", "--schedule", schedule, cwd=app
    )
    assert_error(result, 2, message)


@pytest.mark.memory
def test_failed_needs_ids_or_all(app: Path) -> None:
    assert_error(run_cli("failed", "retry", "--storage", "memory://", cwd=app), 2, "give job ids or --all")
    assert_error(
        run_cli("failed", "retry", "a", "--all", "--storage", "memory://", cwd=app),
        2,
        "give job ids or --all",
    )


# --------------------------------------------------- across processes (file, redis)


def make_jobs(store_url: str, queue_name: str, failed: list[str]) -> None:
    """Jobs ``failed`` failed (one attempt each) and ``good`` completed with progress, on the shared storage."""

    async def run() -> None:
        queue: Queue[dict[str, bool], str] = Queue(
            storage_from_url(store_url), name=queue_name, max_attempts=1
        )

        @queue.execute
        async def handle(job: Job[dict[str, bool]]) -> str:
            await job.report_progress({"step": 1, "of": 2})
            if job.payload.get("fail"):
                raise ValueError(f"boom {job.id}")
            return "ok"

        async with queue:
            for job_id in failed:
                with pytest.raises(JobFailedError):
                    await queue.enqueue_and_wait(job_id, {"fail": True}, timeout=30)
            await queue.enqueue_and_wait("good", {}, timeout=30)

    asyncio.run(run())


def test_failed_list_and_status_progress(app: Path, store_url: str) -> None:
    target = storage_args(store_url, "features")
    make_jobs(store_url, "features", ["bad-0", "bad-1", "bad-2"])
    listed = run_cli("failed", "list", *target, "--json", cwd=app)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [row["id"] for row in rows] == ["bad-2", "bad-1", "bad-0"]
    assert rows[0]["error"] == "boom bad-2"
    assert rows[0]["error_type"] == "ValueError"
    table = run_cli("failed", "list", *target, "--limit", "2", cwd=app)
    assert "bad-1" in table.stdout and "ValueError: boom bad-1" in table.stdout
    assert "bad-0" not in table.stdout
    status = run_cli("status", *target, "good", cwd=app)
    assert 'progress:  {"step": 1, "of": 2}' in status.stdout, status.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)  # a dozen CLI processes: slow on a loaded machine
def test_failed_retry_and_purge(app: Path, store_url: str) -> None:
    target = storage_args(store_url, "features")
    make_jobs(store_url, "features", ["bad-0", "bad-1", "bad-2", "bad-3"])

    retried = run_cli("failed", "retry", *target, "bad-0", "good", "--json", cwd=app)
    assert retried.returncode == 1  # "good" is not a failed job
    assert json.loads(retried.stdout) == {"retried": ["bad-0"], "not_failed": ["good"]}
    assert "state:     queued" in run_cli("status", *target, "bad-0", cwd=app).stdout

    refused = answering("no", "failed", "retry", *target, "--all", cwd=app)
    assert refused.returncode == 1
    assert "retry 3 failed job(s) in queue 'features'? [y/N]" in refused.stderr
    assert "not confirmed" in refused.stderr

    confirmed = answering("y", "failed", "retry", *target, "--all", cwd=app)
    assert confirmed.returncode == 0, confirmed.stderr
    assert confirmed.stdout.count("retried bad-") == 3
    assert failed_ids(target, app) == []

    make_jobs(store_url, "features", ["bad-0", "bad-1", "bad-2", "bad-3"])  # they run and fail again
    assert len(failed_ids(target, app)) == 4
    purged = run_cli("failed", "purge", *target, "--yes", "--json", cwd=app)
    assert json.loads(purged.stdout) == {"purged": 4}
    assert failed_ids(target, app) == []


def test_status_shows_the_progress_of_a_running_job(app: Path, store_url: str) -> None:
    target = storage_args(store_url, "progress")
    with spawn("worker", "features_app:handle", *target, cwd=app) as (_proc, reader):
        reader.wait_for("handler features_app:handle")
        assert run_cli("enqueue", *target, "held", '{"hold": 60}', cwd=app).returncode == 0
        deadline = time.monotonic() + 30
        while "state:     processing" not in (status := run_cli("status", *target, "held", cwd=app)).stdout:
            assert time.monotonic() < deadline, status.stdout
        assert 'progress:  {"step": 1, "of": 2}' in status.stdout
        # spawn() kills the worker: the held job need not finish


@pytest.mark.file
def test_stats_lists_the_schedules_workers_run(app: Path) -> None:
    target = storage_args((app / "queue").as_uri())
    hostile = "x[/b]\x1b[31m"
    args = ["worker", "features_app:handle", *target, "--schedule", f"{hostile}=0 3 * * *",
            "--schedule", "beat=* * * * * *"]  # fmt: skip
    with spawn(*args, cwd=app) as (proc, reader):
        reader.wait_for("job 'schedule:beat:")
        deadline = time.monotonic() + 60
        while "next run (UTC)" not in (stats := run_cli("stats", *target, cwd=app)).stdout:
            assert stats.returncode == 0, stats.stderr
            assert time.monotonic() < deadline, stats.stdout
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    out = stats.stdout
    assert "\x1b" not in out and "x[/b]\\x1b[31m" in out, out  # the name as text, its escape escaped
    assert "cron 0 3 * * *" in out and "every" not in out and "cron * * * * * *" in out
    nightly = next(line for line in out.splitlines() if "x[/b]" in line)
    assert re.search(r"\d{4}-\d\d-\d\d 03:00:00", nightly), nightly  # next run, UTC
    assert "next run (UTC)" not in run_cli("stats", *target, cwd=app).stdout  # gone with the worker
