"""The real ``jobqueue`` executable, run as a subprocess: demo, client commands, every error message."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty, Queue

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from servers import ServerProcess, find_binary

JOBQUEUE = Path(sys.executable).with_name("jobqueue")

APP = textwrap.dedent(
    """
    import asyncio

    not_a_function = 42

    async def handle(job):
        await asyncio.sleep(job.payload.get("sleep", 0))
        if job.payload.get("fail"):
            raise ValueError("boom")
        return {"echo": job.payload, "attempt": job.attempt}
    """
)


def cli_env(**extra: str) -> dict[str, str]:
    """The test's environment without JOBQUEUE_* settings, with a wide terminal for rich."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("JOBQUEUE_")}
    env.update(COLUMNS="160", **extra)
    return env


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(JOBQUEUE), *args],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    """Exit ``code``, no traceback, and one stderr line naming the problem."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("jobqueue: error: "), lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


class LineReader:
    """Reads a process's stderr in a thread so a test can wait for a line without blocking forever."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self.lines: list[str] = []
        self._queue: Queue[str] = Queue()
        self._thread = threading.Thread(target=self._pump, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]  # a text stream
            self._queue.put(line)

    def wait_for(self, fragment: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if fragment in line:
                return line
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except Empty:
                break
            self.lines.append(line)
            if fragment in line:
                return line
        raise AssertionError(f"no line with {fragment!r} within {timeout}s; got:\n{''.join(self.lines)}")

    def rest(self) -> str:
        self._thread.join(timeout=5)
        while not self._queue.empty():
            self.lines.append(self._queue.get())
        return "".join(self.lines)


@contextmanager
def spawn(*args: str, cwd: Path) -> Iterator[tuple[subprocess.Popen[str], LineReader]]:
    """Start ``jobqueue ARGS`` with stderr read by a ``LineReader``; SIGKILL it if the test leaves it running."""
    proc = subprocess.Popen([str(JOBQUEUE), *args], cwd=cwd, env=cli_env(), stderr=subprocess.PIPE, text=True)
    try:
        yield proc, LineReader(proc)
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[str]:
    """A throw-away redis-server for this module (skips without the binary, unless servers are required)."""
    if find_binary("redis") is None:
        message = "redis-server is not installed (tools/install-servers.sh)"
        if os.environ.get("JOBQUEUE_REQUIRE_SERVERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with ServerProcess.start_new("redis") as server:
        yield server.url


@pytest.fixture(
    params=[pytest.param("file", marks=pytest.mark.file), pytest.param("redis", marks=pytest.mark.redis)]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A storage URL other processes can share: a directory, or a fresh prefix on redis."""
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    server_url: str = request.getfixturevalue("redis_server")
    return f"{server_url}?prefix=cli-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


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
    assert "Traceback" not in result.stderr
    assert took < 20, f"the demo took {took:.1f}s"


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
        ("app:not_a_function", 1, "handler 'app:not_a_function' is not callable (it is a int)"),
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
    assert result.returncode == 2
    assert "--timeout needs --wait" in result.stderr


# ---------------------------------------------------------------- worker (memory)


def test_idle_worker_stops_on_sigterm_with_exit_code_0(app_dir: Path) -> None:
    args = ["worker", "app:handle", "--storage", "memory://", "--reaper", "--concurrency", "4"]
    with spawn(*args, cwd=app_dir) as (proc, reader):
        started = reader.wait_for("handler app:handle")
        assert "concurrency 4, with a reaper" in started
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "stopped" in reader.rest()


# ------------------------------------------- worker across processes (file, redis)


def count_of(stats: str, state: str) -> int:
    """The count of ``state`` in the output of ``jobqueue stats`` (a rich table)."""
    match = re.search(rf"\b{state}\b[\s│]+(\d+)", stats)
    assert match is not None, stats
    return int(match.group(1))


def storage_args(url: str, queue: str | None = None) -> list[str]:
    return ["--storage", url, *(["--queue", queue] if queue else [])]


def test_worker_round_trip_status_and_stats(app_dir: Path, store_url: str) -> None:
    target = storage_args(store_url, "emails")
    with spawn("worker", "app:handle", *target, "--concurrency", "2", cwd=app_dir) as (proc, reader):
        worker_id = reader.wait_for("handler app:handle").split("worker ", 1)[1].split(":", 1)[0]

        done = run_cli("enqueue", *target, "job-1", '{"x": 1}', "--wait", "--timeout", "10", cwd=app_dir)
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
        assert proc.wait(timeout=15) == 0
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
        assert run_cli("enqueue", *target, "slow", '{"sleep": 1.0}', cwd=app_dir).returncode == 0
        reader.wait_for("job 'slow' started")
        proc.send_signal(signal.SIGTERM)
        assert "1 running job(s)" in reader.wait_for("SIGTERM received")
        assert proc.wait(timeout=15) == 0
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
        assert proc.wait(timeout=15) == 0
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
