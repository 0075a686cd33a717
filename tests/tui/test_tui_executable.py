"""The real ``jobqueue-tui`` executable in a pseudo-terminal (tmux), on a storage shared with the test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from jobqueue import JobState, Queue, Storage, storage_from_url
from jobqueue.storage import Monitoring

from .tui_helpers import HERE, JOBQUEUE, complete, put

EXECUTABLE = str(Path(sys.executable).with_name("jobqueue-tui"))


class Terminal:
    """One tmux server on a private socket, running one command in a 100x30 pane."""

    def __init__(self, tmp: Path) -> None:
        self.socket = f"jobqueue-tui-test-{uuid.uuid4().hex[:8]}"
        self.exit_file = tmp / "exit-code"

    async def tmux(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            "tmux", "-L", self.socket, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, f"tmux {' '.join(args)}: {err.decode()}"
        return out.decode()

    async def start(self, *argv: str, env: dict[str, str] | None = None) -> None:
        # The pane is sized first, then the command replaces its placeholder: a command started
        # with the session can read the terminal size before tmux applies -x/-y.
        await self.tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "dash", "-x", "100", "-y", "30", "sleep 600"
        )
        size = await self.tmux("display-message", "-p", "-t", "dash", "#{pane_width}x#{pane_height}")
        assert size.strip() == "100x30", size
        # shutil.get_terminal_size() prefers $COLUMNS/$LINES to the pty: drop any inherited ones.
        settings = [f"{name}={value}" for name, value in (env or {}).items()]
        command = " ".join(["env", "-u", "COLUMNS", "-u", "LINES", *settings, EXECUTABLE, *argv])
        command += f"; echo $? > {self.exit_file}"
        await self.tmux("respawn-pane", "-k", "-t", "dash", "-e", "TERM=xterm-256color", command)
        self.pid = int((await self.tmux("display-message", "-p", "-t", "dash", "#{pane_pid}")).strip())

    async def screen(self) -> str:
        return await self.tmux("capture-pane", "-p", "-t", "dash")

    async def wait_for(self, *texts: str, timeout: float = 40.0) -> str:
        """Poll the pane until every text is on it at once (a capture can catch a half-drawn frame)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = await self.screen()
            if all(text in screen for text in texts):
                return screen
            if time.monotonic() > deadline:
                size = await self.tmux("display-message", "-p", "-t", "dash", "#{pane_width}x#{pane_height}")
                raise AssertionError(f"{texts!r} never appeared together on {size.strip()}:\n{screen}")
            await asyncio.sleep(0.05)

    async def wait_until(self, matches: Callable[[str], object], timeout: float = 40.0) -> str:
        """Poll the pane until ``matches(screen)`` is truthy; return that screen."""
        deadline = time.monotonic() + timeout
        while not matches(screen := await self.screen()):
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never matched:\n{screen}")
            await asyncio.sleep(0.05)
        return screen

    async def press(self, *keys: str) -> None:
        await self.tmux("send-keys", "-t", "dash", *keys)

    async def exit_code(self, timeout: float = 40.0) -> int:
        deadline = time.monotonic() + timeout
        while not self.exit_file.exists() or not self.exit_file.read_text().strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"jobqueue-tui did not exit; the screen is:\n{await self.screen()}")
            await asyncio.sleep(0.05)
        return int(self.exit_file.read_text())

    def kill(self) -> None:
        with_pid = getattr(self, "pid", None)
        if with_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(with_pid, signal.SIGKILL)


@pytest.fixture
async def terminal(tmp_path: Path) -> AsyncIterator[Terminal]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (apt-get install tmux)")
    term = Terminal(tmp_path)
    try:
        yield term
    finally:
        term.kill()
        proc = await asyncio.create_subprocess_exec(
            "tmux", "-L", term.socket, "kill-server", stderr=asyncio.subprocess.DEVNULL
        )
        await proc.wait()


@pytest.mark.file
async def test_dashboard_in_a_terminal_watches_and_acts_on_a_file_storage(
    terminal: Terminal, tmp_path: Path
) -> None:
    url = f"file://{tmp_path / 'store'}"
    storage: Storage = storage_from_url(url)
    async with storage:
        await put(storage, "email-1", "email-2", "email-3")
        await terminal.start(url, "--refresh", "30")
        await terminal.wait_for("queued 3", f"jobqueue  queue default  {url[:60]}", "email-3", "Quit")

        # Another process (this test) finishes a job: the dashboard hears it.
        await complete(storage, "email-1")
        await terminal.wait_for("completed 1", "queued 2")

        await terminal.press("?")
        await terminal.wait_for("jobqueue dashboard")
        await terminal.press("Escape")
        await terminal.wait_for("/ search id prefix")

        # The cursor is on the newest job: cancel it, confirming with y.
        await terminal.press("c")
        await terminal.wait_for("Cancel job email-3?")
        await terminal.press("y")
        await terminal.wait_for("queued 1")
        assert await storage.get("email-3") is None
        remaining = await storage.get("email-2")
        assert remaining is not None
        assert remaining.state is JobState.QUEUED

        await terminal.press("q")
        assert await terminal.exit_code() == 0


@pytest.mark.file
async def test_schedules_with_their_next_run_in_a_terminal(terminal: Terminal, tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'store'}"
    storage: Storage = storage_from_url(url)
    async with storage:
        queue: Queue[Any, None] = Queue(storage, worker_id="w-1", visibility_timeout=1)
        queue.execute(lambda job: None)
        queue.schedule("x[/b]\x1b[31m", every=1)
        queue.schedule("nightly", cron="0 3 * * *", timezone="Europe/Paris")
        async with queue:
            # The dashboard's clock reads Paris time, so the nightly run is at 03:00 on its screen.
            await terminal.start(url, "--refresh", "2", env={"TZ": "Europe/Paris"})
            screen = await terminal.wait_for(
                "schedules", "nightly", "cron 0 3 * * *", "Europe/Paris", "1 w-1"
            )
            nightly = next(line for line in screen.splitlines() if "nightly" in line)
            assert re.search(r"in \d+[hm]\d\d[ms] · (\d{4}-\d\d-\d\d )?03:00", nightly), screen
            # The hostile name is shown as text: its markup not read, its escape written out.
            hostile = next(line for line in screen.splitlines() if "every 1s" in line)
            assert "x[/b]\\x1b[31m" in hostile, screen
            # Live: the ticks the worker enqueues show up as its last tick, and the next run moves on.
            ticks = re.compile(r"every 1s\s+UTC\s+in [01]s · \d\d:\d\d:\d\d\s+(\d\d:\d\d:\d\d)")
            first = ticks.findall(await terminal.wait_until(ticks.search))
            await terminal.wait_until(lambda text: ticks.findall(text) not in ([], first))
        # A stopped worker takes its schedules with it: the panel goes.
        await terminal.wait_until(lambda text: "cron 0 3 * * *" not in text)
        await terminal.press("q")
        assert await terminal.exit_code() == 0


@pytest.mark.file
async def test_dashboard_in_a_terminal_shows_workers_join_and_leave(
    terminal: Terminal, tmp_path: Path
) -> None:
    url = f"file://{tmp_path / 'store'}"
    storage: Storage = storage_from_url(url)
    async with storage:
        assert isinstance(storage, Monitoring)
        # A fallback refresh far beyond the test's bounds: only the worker events update the panel.
        await terminal.start(url, "--refresh", "60")
        await terminal.wait_for("workers", "Quit")
        worker = await asyncio.create_subprocess_exec(
            JOBQUEUE, "worker", "tui_worker_app:handle", "--storage", url, cwd=HERE,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            worker_id = await _registered(storage)
            registered = time.monotonic()
            await terminal.wait_for(worker_id[:20], timeout=20)
            # Generous for a loaded machine, yet far below the 60 s fallback.
            assert time.monotonic() - registered < 10
            worker.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(worker.wait(), 40) == 0
            stopped = time.monotonic()
            await _gone(terminal, worker_id[:20], timeout=20)
            assert time.monotonic() - stopped < 10
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        await terminal.press("q")
        assert await terminal.exit_code() == 0


async def _registered(storage: Monitoring, timeout: float = 40.0) -> str:
    """The id of the one worker registered on ``storage``, once there is one."""
    deadline = time.monotonic() + timeout
    while not (workers := list(await storage.list_workers())):
        assert time.monotonic() < deadline, "the jobqueue worker never registered"
        await asyncio.sleep(0.05)
    return workers[0].id


async def _gone(terminal: Terminal, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text in (screen := await terminal.screen()):
        assert time.monotonic() < deadline, f"{text!r} still on the screen:\n{screen}"
        await asyncio.sleep(0.05)


@pytest.mark.memory
async def test_read_only_dashboard_in_a_terminal(terminal: Terminal) -> None:
    await terminal.start("memory://", "--read-only", "--queue", "mail")
    screen = await terminal.wait_for("read-only", "queue mail", "Quit")
    footer = screen.rstrip().splitlines()[-1]
    assert "Quit" in footer
    assert "Cancel" not in footer
    assert "Purge" not in footer
    await terminal.press("p", "c")
    await terminal.press("q")
    assert await terminal.exit_code() == 0


async def run_cli(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        EXECUTABLE, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.memory
async def test_bad_arguments_fail_with_one_clear_line() -> None:
    code, err = await run_cli("nosuch://x")
    assert code == 2
    assert err.startswith("jobqueue-tui: no storage backend handles nosuch://")
    assert "Traceback" not in err

    code, err = await run_cli("memory://", "--refresh", "0")
    assert code == 2
    assert "--refresh must be > 0 seconds" in err


@pytest.mark.parametrize(
    "url",
    [
        "redis://u:hunter2@127.0.0.1:99999/0",  # a port out of range was a traceback
        "redis://127.0.0.1/0?password=hunter2&bogus=1",  # the unknown option's error quoted the URL
        "memory://?token=hunter2",
    ],
)
async def test_a_bad_url_is_one_line_without_its_secrets(url: str) -> None:
    code, err = await run_cli(url)
    assert code == 2
    assert err.startswith("jobqueue-tui: ")
    assert "hunter2" not in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.redis
async def test_unreachable_server_fails_with_the_password_masked(unused_tcp_port: int) -> None:
    code, err = await run_cli(f"redis://:hunter2@127.0.0.1:{unused_tcp_port}/0")
    assert code == 1
    assert err.startswith(f"jobqueue-tui: cannot connect to redis://:***@127.0.0.1:{unused_tcp_port}/0")
    assert "hunter2" not in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
