"""The CLI of issue 13, as real processes: ``failed``, worker ``--schedule``/``--max-attempts``/``--job-timeout``,
and progress in ``status``."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

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


def test_failed_list_retry_purge_and_progress(app: Path, store_url: str) -> None:
    target = storage_args(store_url, "features")
    with spawn("worker", "features_app:handle", *target, "--max-attempts", "1", cwd=app) as (proc, reader):
        reader.wait_for("handler features_app:handle")
        for n in range(3):
            result = run_cli("enqueue", *target, f"bad-{n}", '{"fail": true}', "--wait", cwd=app)
            assert_error(result, 1, f"job 'bad-{n}' failed: ValueError: boom bad-{n}")
        done = run_cli("enqueue", *target, "good", "{}", "--wait", cwd=app)
        assert done.returncode == 0, done.stderr

        status = run_cli("status", *target, "good", cwd=app)
        assert 'progress:  {"step": 1, "of": 2}' in status.stdout, status.stdout

        listed = run_cli("failed", "list", *target, "--json", cwd=app)
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert [row["id"] for row in rows] == ["bad-2", "bad-1", "bad-0"]
        assert rows[0]["error"] == "boom bad-2"
        table = run_cli("failed", "list", *target, cwd=app)
        assert "bad-1" in table.stdout and "ValueError: boom bad-1" in table.stdout

        refused = answering("no", "failed", "purge", *target, cwd=app)
        assert refused.returncode == 1
        assert "delete 3 failed job(s) in queue 'features'? [y/N]" in refused.stderr
        assert "not confirmed" in refused.stderr

        retried = run_cli("failed", "retry", *target, "bad-0", "--json", cwd=app)
        assert json.loads(retried.stdout) == {"retried": ["bad-0"], "not_failed": []}
        reader.wait_for("job 'bad-0' failed", timeout=30)  # ran again, failed again

        purged = run_cli("failed", "purge", *target, "--yes", "--json", cwd=app)
        assert json.loads(purged.stdout) == {"purged": 3}
        assert json.loads(run_cli("failed", "list", *target, "--json", cwd=app).stdout) == []

        for n in range(2):
            run_cli("enqueue", *target, f"again-{n}", '{"fail": true}', "--wait", cwd=app)
        confirmed = answering("y", "failed", "retry", *target, "--all", cwd=app)
        assert confirmed.returncode == 0, confirmed.stderr
        assert "retried again-1" in confirmed.stdout and "retried again-0" in confirmed.stdout

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_status_shows_the_progress_of_a_running_job(app: Path, store_url: str) -> None:
    target = storage_args(store_url, "progress")
    with spawn("worker", "features_app:handle", *target, cwd=app) as (proc, reader):
        reader.wait_for("handler features_app:handle")
        assert run_cli("enqueue", *target, "held", '{"hold": 60}', cwd=app).returncode == 0
        deadline = time.monotonic() + 30
        while "state:     processing" not in (status := run_cli("status", *target, "held", cwd=app)).stdout:
            assert time.monotonic() < deadline, status.stdout
        assert 'progress:  {"step": 1, "of": 2}' in status.stdout
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)  # no need to wait for the held job
        proc.wait(timeout=30)
