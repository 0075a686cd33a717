"""Helpers for the CLI tests: run the real ``jobqueue`` executable and read what it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty, Queue

JOBQUEUE = Path(sys.executable).with_name("jobqueue")

APP = textwrap.dedent(
    """
    import asyncio

    not_a_function = 42

    async def handle(job):
        await asyncio.sleep(job.payload.get("sleep", 0))
        if job.attempt == 1:
            await asyncio.sleep(job.payload.get("sleep_first", 0))
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
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
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

    def wait_for(self, fragment: str, timeout: float = 30) -> str:
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


def count_of(stats: str, state: str) -> int:
    """The count of ``state`` in the output of ``jobqueue stats`` (a rich table)."""
    match = re.search(rf"\b{state}\b[\s│]+(\d+)", stats)
    assert match is not None, stats
    return int(match.group(1))


def storage_args(url: str, queue: str | None = None) -> list[str]:
    return ["--storage", url, *(["--queue", queue] if queue else [])]
