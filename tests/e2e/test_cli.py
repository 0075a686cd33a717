"""The real ``jobqueue`` executable, run as a subprocess: demo, client commands, every error message."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.cli_support import assert_error, cli_env, run_cli

# ------------------------------------------------------------------------ demo


def test_demo_runs_in_seconds_and_prints_the_summary(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_cli("demo", "--jobs", "100", cwd=tmp_path, timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for fragment in ("100/100", "request/response", "failing:", "completed on attempt 2", "summary"):
        assert fragment in out, (fragment, out)
    for metric in ("jobs/s", "retries", "p50 latency"):
        assert metric in out
    assert "cleaned up: 102 finished jobs" in out
    # jobqueue-file is installed in the workspace, so the default storage is files in ./.jobqueue
    assert f"on {(tmp_path / '.jobqueue').as_uri()}" in out.splitlines()[0]
    assert (tmp_path / ".jobqueue" / "demo").is_dir()
    assert "Traceback" not in result.stderr
    assert took < 30, f"the demo took {took:.1f}s"


def test_demo_without_rich_prints_plain_text(tmp_path: Path) -> None:
    code = "import sys; sys.modules['rich'] = None; from jobqueue._cli import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", code, "demo", "--storage", "memory://", "--jobs", "30"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "completed 30/30" in result.stdout
    assert "summary" in result.stdout
    assert "retries" in result.stdout
    assert not set("━┃│┏") & set(result.stdout), "box drawing means rich was used"


def test_demo_on_an_unknown_scheme_is_a_usage_error(tmp_path: Path) -> None:
    assert_error(
        run_cli("demo", "--storage", "nosuch://x", cwd=tmp_path), 2, "no storage backend handles nosuch://"
    )


# ------------------------------------------------------------ client commands


def test_enqueue_status_cancel_and_stats_on_memory(tmp_path: Path) -> None:
    storage = ["--storage", "memory://"]
    queued = run_cli(
        "enqueue", *storage, "job-1", '{"x": 1}', "--delay", "5", "--max-attempts", "2", cwd=tmp_path
    )
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.strip() == "queued job-1"
    # memory:// lives in one process: the next command sees an empty storage
    assert_error(run_cli("status", *storage, "job-1", cwd=tmp_path), 1, "job 'job-1' not found")
    assert_error(run_cli("cancel", *storage, "job-1", cwd=tmp_path), 1, "job 'job-1' not found")
    stats = run_cli("stats", *storage, "--queue", "emails", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert "queue 'emails' on memory://" in stats.stdout
    for state in ("queued", "processing", "failing", "completed", "failed"):
        assert state in stats.stdout
    assert "workers: none registered" in stats.stdout


def test_enqueue_wait_times_out_with_a_clear_error(tmp_path: Path) -> None:
    result = run_cli(
        "enqueue", "--storage", "memory://", "lonely", "{}", "--wait", "--timeout", "0.2", cwd=tmp_path
    )
    assert_error(result, 1, "job 'lonely' did not finish within 0.2s")


def test_environment_configures_storage_and_queue_and_flags_win(tmp_path: Path) -> None:
    env = cli_env(JOBQUEUE_STORAGE="memory://", JOBQUEUE_QUEUE="reports")
    from_env = run_cli("stats", cwd=tmp_path, env=env)
    assert from_env.returncode == 0, from_env.stderr
    assert "queue 'reports' on memory://" in from_env.stdout
    env = cli_env(JOBQUEUE_STORAGE="nosuch://x", JOBQUEUE_QUEUE="reports")
    flags = run_cli("stats", "--storage", "memory://", "--queue", "mail", cwd=tmp_path, env=env)
    assert flags.returncode == 0, flags.stderr
    assert "queue 'mail' on memory://" in flags.stdout


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("spec", "code", "message"),
    [
        (
            "nosuchmodule:handle",
            1,
            "cannot import handler module 'nosuchmodule': No module named 'nosuchmodule'",
        ),
        ("app:missing", 1, "module 'app' has no attribute 'missing'"),
        ("app:not_a_function", 1, "handler 'app:not_a_function' is not callable (type: int)"),
        ("app", 2, "handler must look like 'package.module:function', got 'app'"),
    ],
)
def test_worker_reports_a_bad_handler_in_one_line(app_dir: Path, spec: str, code: int, message: str) -> None:
    assert_error(run_cli("worker", spec, "--storage", "memory://", cwd=app_dir), code, message)


def test_worker_reports_an_error_raised_while_importing_the_handler(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import json\nraise RuntimeError('config missing')\n")
    result = run_cli("worker", "broken:handle", "--storage", "memory://", cwd=tmp_path)
    assert_error(result, 1, "error while importing 'broken': RuntimeError: config missing")


def test_debug_shows_the_traceback(app_dir: Path) -> None:
    result = run_cli("worker", "app:missing", "--storage", "memory://", "--debug", cwd=app_dir)
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1] == "jobqueue: error: module 'app' has no attribute 'missing'"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nosuch://host", "no storage backend handles nosuch://"),
        ("not-a-url", "storage url 'not-a-url' has no scheme"),
        ("memory://host/path", "memory:// takes no host or path"),
    ],
)
def test_bad_storage_urls_are_usage_errors(app_dir: Path, url: str, message: str) -> None:
    assert_error(
        run_cli("worker", "app:handle", "--storage", url, cwd=app_dir), 2, "bad storage url", message
    )
    assert_error(run_cli("status", "--storage", url, "job-1", cwd=app_dir), 2, message)


@pytest.mark.redis
@pytest.mark.parametrize("command", [["worker", "app:handle"], ["enqueue", "job-1", "{}"], ["stats"]])
def test_unreachable_server_is_one_clear_line(app_dir: Path, command: list[str]) -> None:
    result = run_cli(*command, "--storage", "redis://:secret@127.0.0.1:1/0", cwd=app_dir)
    assert_error(result, 1, "cannot reach storage redis://:***@127.0.0.1:1/0", "Connection")
    assert "secret" not in result.stderr


def test_bad_queue_name_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("stats", "--storage", "memory://", "--queue", "", cwd=tmp_path)
    assert_error(result, 2, "bad queue name '': namespace name must be a non-empty str")


def test_missing_storage_names_the_flag_and_the_variable(app_dir: Path) -> None:
    result = run_cli("worker", "app:handle", cwd=app_dir)
    assert_error(result, 2, "pass --storage URL or set JOBQUEUE_STORAGE")


def test_bad_json_payload_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("enqueue", "--storage", "memory://", "job-1", "{x: 1}", cwd=tmp_path)
    assert_error(result, 2, "PAYLOAD_JSON is not valid JSON", "'{x: 1}'")


def test_bad_options_are_rejected_by_the_parser(app_dir: Path) -> None:
    result = run_cli("worker", "app:handle", "--storage", "memory://", "--concurrency", "0", cwd=app_dir)
    assert result.returncode == 2
    assert "argument --concurrency: must be >= 1, got 0" in result.stderr
    result = run_cli("enqueue", "--storage", "memory://", "a", "{}", "--timeout", "1", cwd=app_dir)
    assert_error(result, 2, "--timeout needs --wait")
