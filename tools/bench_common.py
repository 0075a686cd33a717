"""The driver protocol shared by every benchmark driver process (stdlib only: the peers' venv imports it).

A driver is a subprocess started by ``bench.py`` with a mode and options. It
prints one JSON object per line on stdout: ``{"ready": true}`` once it is set
up (imports done, connections open), then waits for a ``go`` line on stdin,
runs, prints ``{"result": {...}}`` and exits. A ``serve`` driver (a worker
used by the latency workloads) prints ready, works until it reads ``stop``
(or stdin closes), then exits.

The parent side (``Driver``) reads those lines with deadlines and kills the
driver's process group when it overstays.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Driver",
    "DriverError",
    "DriverOptions",
    "emit",
    "percentiles",
    "wait_line",
]

MODES = ("produce", "drain", "serve", "latency", "waiters")


@dataclass(frozen=True)
class DriverOptions:
    """What every driver understands; each mode uses the fields it needs."""

    mode: str
    url: str
    jobs: int
    concurrency: int
    inflight: int
    prefix: str
    queue: str


def parse_options(argv: Sequence[str] | None = None, extra_modes: Sequence[str] = ()) -> DriverOptions:
    parser = argparse.ArgumentParser(description="benchmark driver (started by tools/bench.py)")
    parser.add_argument("mode", choices=(*MODES, *extra_modes))
    parser.add_argument("--url", required=True)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50, help="worker concurrency")
    parser.add_argument("--inflight", type=int, default=50, help="producer requests in flight")
    parser.add_argument("--prefix", default="j", help="job id prefix (unique per run)")
    parser.add_argument("--queue", default="bench", help="queue name")
    args = parser.parse_args(argv)
    return DriverOptions(
        args.mode, args.url, args.jobs, args.concurrency, args.inflight, args.prefix, args.queue
    )


def emit(**fields: Any) -> None:
    """Print one protocol line."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def wait_line(*words: str) -> str:
    """Wait (without blocking the loop) for one of ``words`` on stdin; ``"eof"`` when it closes."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def read() -> None:
        while True:
            line = sys.stdin.readline()
            word = line.strip() if line else "eof"
            if not line or word in words:
                loop.call_soon_threadsafe(_set, future, word)
                return

    threading.Thread(target=read, daemon=True).start()
    return await future


def _set(future: asyncio.Future[str], value: str) -> None:
    if not future.done():
        future.set_result(value)


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 (milliseconds) of a sample."""
    ordered = sorted(samples_ms)
    if not ordered:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": statistics.median(ordered), "p95": at(0.95), "p99": at(0.99)}


async def run_inflight(total: int, inflight: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Run ``one(i)`` for i in range(total) with ``inflight`` at a time; return the seconds taken."""
    counter = iter(range(total))

    async def lane() -> None:
        for i in counter:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(max(1, min(inflight, total)))))
    return time.perf_counter() - started


async def timed_enqueues(options: DriverOptions, one: Callable[[int], Awaitable[None]]) -> dict[str, Any]:
    """The produce phase: ready, then on ``go`` ``options.jobs`` calls of ``one``, ``inflight`` at a time.

    Returns the seconds and the rate, or nothing when the bench said something else than ``go``.
    """
    emit(ready=True)
    if await wait_line("go") != "go":
        return {}
    seconds = await run_inflight(options.jobs, options.inflight, one)
    return {"seconds": seconds, "rate": options.jobs / seconds}


async def timed_requests(
    total: int, inflight: int, one: Callable[[int], Awaitable[None]]
) -> dict[str, float]:
    """Request/response: ``inflight`` callers, each timing its calls; seconds, req/s and percentiles."""
    samples: list[float] = []

    async def timed(i: int) -> None:
        start = time.perf_counter()
        await one(i)
        samples.append((time.perf_counter() - start) * 1000)

    seconds = await run_inflight(total, inflight, timed)
    return {"seconds": seconds, "rate": total / seconds, **percentiles(samples)}


# ---------------------------------------------------------------------------- parent side


class DriverError(RuntimeError):
    """A driver died, printed garbage, or overstayed its deadline."""


class Driver:
    """A running driver process, seen from ``bench.py``."""

    def __init__(self, label: str, argv: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self.label = label
        self.argv = list(argv)
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self._lines: list[str] = []
        self._errors: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._pump, args=(self.proc.stdout, self._lines), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self._errors), daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            with self._cond:
                into.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def expect(self, key: str, timeout: float) -> Any:
        """Wait for the next protocol line carrying ``key``; its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._lines:
                    line = self._lines.pop(0)
                    try:
                        message = json.loads(line)
                    except ValueError:
                        continue  # a library printing on stdout
                    if isinstance(message, dict) and key in message:
                        return message[key]
                    if isinstance(message, dict) and "error" in message:
                        raise DriverError(f"{self.label}: {message['error']}")
                if self.proc.poll() is not None and not self._lines:
                    raise DriverError(f"{self.label} exited ({self.proc.returncode}): {self.stderr_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    raise DriverError(f"{self.label}: no {key!r} within {timeout:.0f}s: {self.stderr_tail()}")
                self._cond.wait(min(left, 0.5))

    def send(self, word: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(word + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def stderr_tail(self, lines: int = 15) -> str:
        with self._cond:
            return "".join(self._errors[-lines:]).strip() or "(no stderr)"

    def finish(self, timeout: float = 30.0) -> None:
        """Let the driver exit; kill it when it does not."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the driver's process group (it runs in its own session)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish(5.0)
