"""``jobqueue worker`` as a real process: round trips across processes, graceful and forced stops."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.e2e.cli_support import assert_error, count_of, run_cli, spawn, storage_args

# ---------------------------------------------------------------- worker (memory)


def test_idle_worker_stops_on_sigterm_with_exit_code_0(app_dir: Path) -> None:
    args = ["worker", "app:handle", "--storage", "memory://", "--reaper", "--concurrency", "4"]
    with spawn(*args, cwd=app_dir) as (proc, reader):
        started = reader.wait_for("handler app:handle")
        assert "concurrency 4, with a reaper" in started
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "stopped" in reader.rest()


# ------------------------------------------- worker across processes (file, redis)


def test_worker_round_trip_status_and_stats(app_dir: Path, store_url: str) -> None:
    target = storage_args(store_url, "emails")
    with spawn("worker", "app:handle", *target, "--concurrency", "2", cwd=app_dir) as (proc, reader):
        worker_id = reader.wait_for("handler app:handle").split("worker ", 1)[1].split(":", 1)[0]

        done = run_cli("enqueue", *target, "job-1", '{"x": 1}', "--wait", "--timeout", "30", cwd=app_dir)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"echo": {"x": 1}, "attempt": 1}

        status = run_cli("status", *target, "job-1", cwd=app_dir)
        assert status.returncode == 0, status.stderr
        assert "state:     completed" in status.stdout
        assert 'result:    {"echo": {"x": 1}, "attempt": 1}' in status.stdout

        cached = run_cli("enqueue", *target, "job-1", '{"x": 1}', cwd=app_dir)
        assert cached.stdout.startswith("completed job-1 (cached result): {")

        failed = run_cli(
            "enqueue", *target, "bad", '{"fail": true}', "--wait", "--max-attempts", "1", cwd=app_dir
        )
        assert_error(failed, 1, "job 'bad' failed: ValueError: boom")

        assert_error(run_cli("cancel", *target, "job-1", cwd=app_dir), 1, "job 'job-1' already completed")

        stats = run_cli("stats", *target, cwd=app_dir)
        assert stats.returncode == 0, stats.stderr
        assert worker_id in stats.stdout
        assert "alive" in stats.stdout
        assert count_of(stats.stdout, "completed") == 1
        assert count_of(stats.stdout, "failed") == 1
        assert count_of(stats.stdout, "queued") == 0

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    log = reader.rest()
    assert "job 'job-1' completed" in log
    assert "job 'bad' failed: ValueError: boom" in log


@pytest.mark.file
def test_delayed_job_is_a_duplicate_then_cancelled_across_processes(tmp_path: Path) -> None:
    target = storage_args((tmp_path / "store").as_uri())
    assert run_cli("enqueue", *target, "later", "{}", "--delay", "60", cwd=tmp_path).returncode == 0
    duplicate = run_cli("enqueue", *target, "later", '{"other": 1}', cwd=tmp_path)
    assert duplicate.stdout.strip() == "duplicate later: a job with this id is queued", duplicate.stderr
    status = run_cli("status", *target, "later", cwd=tmp_path)
    assert "state:     queued" in status.stdout, status.stderr
    cancelled = run_cli("cancel", *target, "later", cwd=tmp_path)
    assert cancelled.stdout.strip() == "cancelled later", cancelled.stderr
    assert_error(run_cli("cancel", *target, "later", cwd=tmp_path), 1, "job 'later' not found")


def test_sigterm_lets_the_running_job_finish_then_exits_0(app_dir: Path, store_url: str) -> None:
    target = storage_args(store_url)
    with spawn("worker", "app:handle", *target, "--debug", cwd=app_dir) as (proc, reader):
        reader.wait_for("handler app:handle")
        assert run_cli("enqueue", *target, "slow", '{"sleep": 1.5}', cwd=app_dir).returncode == 0
        reader.wait_for("job 'slow' started")
        proc.send_signal(signal.SIGTERM)
        assert "1 running job(s)" in reader.wait_for("SIGTERM received")
        assert proc.wait(timeout=30) == 0
    assert "job 'slow' completed" in reader.rest()
    status = run_cli("status", *target, "slow", cwd=app_dir)
    assert "state:     completed" in status.stdout, status.stderr


@pytest.mark.file
def test_sigterm_requeues_a_job_that_outlives_the_drain_time(app_dir: Path) -> None:
    target = storage_args((app_dir / "store").as_uri())
    args = ["worker", "app:handle", *target, "--debug", "--visibility-timeout", "0.5"]
    with spawn(*args, cwd=app_dir) as (proc, reader):
        reader.wait_for("handler app:handle")
        assert run_cli("enqueue", *target, "stuck", '{"sleep": 60}', cwd=app_dir).returncode == 0
        reader.wait_for("job 'stuck' started")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert "job 'stuck' requeued (worker stopping)" in reader.rest()
    status = run_cli("status", *target, "stuck", cwd=app_dir)
    assert "state:     queued" in status.stdout, status.stderr


@pytest.mark.file
def test_second_signal_forces_exit_with_a_non_zero_code(app_dir: Path) -> None:
    target = storage_args((app_dir / "store").as_uri())
    with spawn("worker", "app:handle", *target, "--debug", cwd=app_dir) as (proc, reader):
        reader.wait_for("handler app:handle")
        assert run_cli("enqueue", *target, "long", '{"sleep": 60}', cwd=app_dir).returncode == 0
        reader.wait_for("job 'long' started")
        proc.send_signal(signal.SIGINT)
        reader.wait_for("SIGINT received")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 128 + signal.SIGINT
    assert "second SIGINT: exiting now; 1 running job(s) will be recovered" in reader.rest()


@pytest.mark.file
def test_a_reaper_worker_runs_the_job_of_a_sigkilled_worker_again(app_dir: Path) -> None:
    target = storage_args((app_dir / "store").as_uri())
    with spawn("worker", "app:handle", *target, "--debug", "--visibility-timeout", "1", cwd=app_dir) as (
        crashed,
        reader,
    ):
        reader.wait_for("handler app:handle")
        assert run_cli("enqueue", *target, "orphan", '{"sleep_first": 60}', cwd=app_dir).returncode == 0
        reader.wait_for("job 'orphan' started")
        crashed.kill()
        crashed.wait()
    with spawn("worker", "app:handle", *target, "--reaper", "--visibility-timeout", "1", cwd=app_dir) as (
        proc,
        _,
    ):
        # --wait joins the job already in storage; its lease runs out a second after the crash
        done = run_cli("enqueue", *target, "orphan", "{}", "--wait", "--timeout", "30", cwd=app_dir)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"echo": {"sleep_first": 60}, "attempt": 2}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
