"""Hostile strings and the CLI: nothing from a storage reaches the terminal as an escape sequence.

Job ids, queue names, worker ids and error messages are written by whoever
uses the storage. ``jobqueue status`` and ``jobqueue stats`` print them with
every control character escaped (``\\x1b`` shown as four characters), in
rich and in plain output; a storage URL that cannot be parsed is one line.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import unicodedata
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jobqueue import JobFailedError, Queue, storage_from_url
from jobqueue._cli.common import CliError, monitoring
from jobqueue._cli.output import terminal_safe

from tests.e2e.cli_support import JOBQUEUE, assert_error, cli_env, spawn

ESC = "\x1b"
COLOUR = f"{ESC}[31m"
LINK = f"{ESC}]8;;http://x{ESC}\\"
HOSTILE_ID = f"job-{COLOUR}red{ESC}[0m-{LINK}click{ESC}]8;;{ESC}\\-[/bold]"
HOSTILE_QUEUE = f"q-{COLOUR}[/b]"
HOSTILE_WORKER = f"w-{LINK}-\r-[bold red]"
HOSTILE_MESSAGE = f"boom {COLOUR}FAKE{ESC}[2J {LINK}here\x07 \x9b31m"

BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)}


def raw_controls(text: str, *, multiline: bool = False) -> set[str]:
    """Characters a terminal would act on (control characters, bidi overrides, line separators)."""
    allowed = {"\n", "\t"} if multiline else set()
    return {c for c in text if (unicodedata.category(c) == "Cc" or c in BIDI) and c not in allowed}


# --------------------------------------------------------------- the helper


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_terminal_safe_leaves_no_control_character(text: str) -> None:
    assert raw_controls(terminal_safe(text)) == set()
    assert raw_controls(terminal_safe(text, multiline=True), multiline=True) == set()
    if not raw_controls(text):  # text without control characters is printed as it is
        assert terminal_safe(text) == text


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from([ESC, "[", "]", "8", ";", "\\", "\x07", "\x9b", "m", "x"]), min_size=1)
)
def test_terminal_safe_shows_escape_sequences_as_text(text: str) -> None:
    shown = terminal_safe(text)
    assert ESC not in shown and "\x9b" not in shown and "\x07" not in shown
    assert shown.count("\\x1b") >= text.count(ESC)


# ------------------------------------------------------ the real executable


@pytest.fixture(params=["redis", "file"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A storage URL that this process and the ``jobqueue`` executable both reach."""
    if request.param == "file":
        return (tmp_path / "store").as_uri()
    server: str = request.getfixturevalue("redis_server")
    return f"{server}?prefix=h{uuid.uuid4().hex[:10]}"


async def _put_hostile_strings(url: str) -> None:
    """A failed job with a hostile id and error in a hostile queue, and a worker with a hostile id."""
    storage = storage_from_url(url).namespace(HOSTILE_QUEUE)
    queue: Queue[Any, Any] = Queue(storage, worker_id=f"{HOSTILE_WORKER}-run", block_timeout=0.2)

    @queue.execute
    async def handle(job: Any) -> None:
        raise ValueError(HOSTILE_MESSAGE)

    async with queue:
        with pytest.raises(JobFailedError):
            await queue.enqueue_and_wait(HOSTILE_ID, {}, max_attempts=1, timeout=60)
    async with storage:
        await storage.register_worker(HOSTILE_WORKER, ttl_ms=600_000)


def _run(*args: str, cwd: Path, plain: bool) -> subprocess.CompletedProcess[str]:
    if plain:  # the same CLI without rich installed
        code = "import sys; sys.modules['rich'] = None; from jobqueue._cli import main; sys.exit(main())"
        command = [sys.executable, "-c", code, *args]
    else:
        command = [str(JOBQUEUE), *args]
    return subprocess.run(command, cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=60)


@pytest.fixture
def hostile_storage(shared_url: str) -> str:
    asyncio.run(_put_hostile_strings(shared_url))
    return shared_url


@pytest.mark.parametrize("plain", [False, True], ids=["rich", "plain"])
def test_status_and_stats_print_hostile_strings_escaped(
    hostile_storage: str, tmp_path: Path, plain: bool
) -> None:
    target = ["--storage", hostile_storage, "--queue", HOSTILE_QUEUE]
    status = _run("status", *target, HOSTILE_ID, "--traceback", cwd=tmp_path, plain=plain)
    stats = _run("stats", *target, cwd=tmp_path, plain=plain)
    for result in (status, stats):
        assert result.returncode == 0, result.stderr
        assert raw_controls(result.stdout, multiline=True) == set(), result.stdout
        assert raw_controls(result.stderr, multiline=True) == set(), result.stderr
    # What was there is shown, as text: the ESC of the colour code and of the link, the markup.
    assert "\\x1b[31mred" in status.stdout
    assert "\\x1b]8;;http://x\\x1b\\click" in status.stdout
    assert "[/bold]" in status.stdout
    assert "FAKE\\x1b[2J" in status.stdout and "\\x07" in status.stdout and "\\x9b31m" in status.stdout
    assert "\\x1b]8;;http://x" in stats.stdout  # the worker id
    assert "[bold red]" in stats.stdout and "\\x0d" in stats.stdout  # the carriage return


def test_a_job_that_is_missing_is_named_escaped(shared_url: str, tmp_path: Path) -> None:
    result = _run("status", "--storage", shared_url, f"nope-{COLOUR}", cwd=tmp_path, plain=False)
    assert result.returncode == 1
    assert raw_controls(result.stdout + result.stderr, multiline=True) == set()
    assert "not found" in result.stderr


HOSTILE_APP = f"""
async def handle(job):
    raise ValueError({HOSTILE_MESSAGE!r})
"""


def test_worker_logs_and_enqueue_errors_are_escaped(shared_url: str, tmp_path: Path) -> None:
    (tmp_path / "hostile_app.py").write_text(HOSTILE_APP)
    with spawn("worker", "hostile_app:handle", "--storage", shared_url, cwd=tmp_path) as (_, log):
        log.wait_for("worker ", timeout=60)
        result = _run(
            "enqueue",
            "--storage",
            shared_url,
            HOSTILE_ID,
            "{}",
            "--wait",
            "--max-attempts",
            "1",
            cwd=tmp_path,
            plain=False,
        )
        line = log.wait_for("failed: ValueError", timeout=60)
    assert result.returncode == 1
    assert raw_controls(result.stdout + result.stderr, multiline=True) == set(), result.stderr
    assert "FAKE\\x1b[2J" in result.stderr
    assert raw_controls(line.rstrip("\n")) == set(), line
    assert "FAKE\\x1b[2J" in line and "\\x9b31m" in line
    assert raw_controls("".join(log.lines), multiline=True) == set()


# ------------------------------------------------------------ URL problems


@pytest.mark.parametrize("command", [["stats"], ["status", "job-1"], ["worker", "app:handle"]])
@pytest.mark.parametrize("port", ["99999", "-1", "abc"])
def test_a_port_out_of_range_is_one_usage_line(app_dir: Path, command: list[str], port: str) -> None:
    result = subprocess.run(
        [str(JOBQUEUE), *command, "--storage", f"redis://u:s3cret@127.0.0.1:{port}/0"],
        cwd=app_dir,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_error(result, 2, "bad storage url 'redis://u:***@127.0.0.1:", "port")
    assert "s3cret" not in result.stderr + result.stdout


def test_a_secret_in_an_unknown_option_error_is_masked(tmp_path: Path) -> None:
    for url in (
        "redis://u:s3cret@127.0.0.1:1/0?bogus=1",
        "memory://?password=s3cret",
        "redis://h/0?token=s3cret&x=1",
    ):
        result = subprocess.run(
            [str(JOBQUEUE), "stats", "--storage", url],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode in (1, 2), result
        assert "Traceback" not in result.stderr
        assert "s3cret" not in result.stderr + result.stdout, result.stderr


# ------------------------------------------------------------ capabilities


def test_stats_names_the_missing_monitoring_capability() -> None:
    from tests.tui.tui_helpers import BareStorage  # a real storage without the Monitoring mixin

    with pytest.raises(CliError, match=r"stats needs a storage with the monitoring capability.*BareStorage"):
        monitoring(BareStorage(), "stats")
