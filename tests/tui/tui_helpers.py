"""Helpers shared by the dashboard tests: jobs put straight into storage, and condition waits."""

from __future__ import annotations

import asyncio
import html
import inspect
import json
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Self

import msgpack
from jobqueue import JobState, MemoryStorage, Queue, Storage
from jobqueue.storage import (
    Channel,
    Claim,
    EnqueueOutcome,
    Envelope,
    Finish,
    JobRecord,
    NewJob,
    Recovery,
    Revoked,
    StorageEvent,
    TtlOutcome,
    encode_envelope,
    now_ms,
)
from jobqueue_tui import DashboardApp
from jobqueue_tui._widgets.jobs import JobsTable
from textual.pilot import Pilot

from .tui_worker_app import handle

HERE = Path(__file__).parent
WORKER_START_S = 40.0
"""How long a test waits for work done by a ``jobqueue worker`` process it just started
(importing and connecting takes seconds on a busy machine)."""
JOBQUEUE = str(Path(sys.executable).with_name("jobqueue"))
WORKER = "worker-test"
LEASE_MS = 60_000
TTL_MS = 600_000


def envelope(payload: bytes = b'{"x": 1}', *, max_attempts: int = 3) -> bytes:
    return encode_envelope(
        Envelope(payload=payload, created_at=now_ms(), max_attempts=max_attempts, result_ttl=TTL_MS)
    )


def error_bytes(message: str = "boom", type_: str = "ValueError") -> bytes:
    return json.dumps(
        {
            "message": message,
            "type": type_,
            "code": "HANDLER_ERROR",
            "traceback": f'Traceback (most recent call last):\n  File "app.py", line 7\n{type_}: {message}\n',
        }
    ).encode()


async def put(storage: Storage, *job_ids: str, payload: bytes = b'{"x": 1}', max_attempts: int = 3) -> None:
    for job_id in job_ids:
        outcome = await storage.enqueue(job_id, envelope(payload, max_attempts=max_attempts))
        assert outcome.accepted, job_id


async def claim(storage: Storage, count: int, worker: str = WORKER) -> list[Claim]:
    """Claim the ``count`` oldest ready jobs (dequeue is oldest first)."""
    claims = await storage.dequeue(worker, lease_ms=LEASE_MS, timeout_ms=0, limit=count)
    assert len(claims) == count, claims
    return claims


async def complete(
    storage: Storage, job_id: str, result: bytes = b'{"ok": true}', worker: str = WORKER
) -> None:
    [got] = await claim(storage, 1, worker)
    assert got.id == job_id, f"expected to claim {job_id}, claimed {got.id}"
    assert await storage.complete(job_id, worker, result, TTL_MS)


async def fail(storage: Storage, job_id: str, worker: str = WORKER) -> None:
    [got] = await claim(storage, 1, worker)
    assert got.id == job_id, f"expected to claim {job_id}, claimed {got.id}"
    assert await storage.fail(job_id, worker, error_bytes(), TTL_MS)


async def tick() -> None:
    """Wait until the millisecond clock has moved on, so that the next timestamp differs."""
    start = now_ms()
    await asyncio.sleep(0.002)  # timestamps are whole milliseconds: two of them must pass
    assert now_ms() > start + 1


def msgpack_bytes(value: object) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


async def wait_until(
    pilot: Pilot[None],
    condition: Callable[[], bool | Awaitable[bool]],
    what: str,
    timeout: float = 20.0,
) -> None:
    """Let the app run until ``condition`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.02)


def shows(app: DashboardApp, label: str, value: str) -> bool:
    """True when the screen has a line ``label`` then ``value`` (the detail screen's facts)."""
    return re.search(rf"^ {re.escape(label)} +{re.escape(value)}", screen_text(app), re.MULTILINE) is not None


def table_ids(app: DashboardApp) -> list[str]:
    """Job ids shown in the jobs table, top to bottom."""
    table = app.screen.query_one(JobsTable)
    return [str(row.key.value) for row in table.ordered_rows]


def screen_text(app: DashboardApp) -> str:
    """Everything visible, as plain text lines (from the SVG screenshot)."""
    return svg_text(app.export_screenshot())


def svg_text(svg: str) -> str:
    """The text of a Textual SVG screenshot, one line per terminal row."""
    rows: dict[float, list[tuple[float, str]]] = {}
    pattern = r'<text class="[^"]*" x="([\d.]+)" y="([\d.]+)"[^>]*>(.*?)</text>'
    for match in re.finditer(pattern, svg):
        rows.setdefault(float(match.group(2)), []).append(
            (float(match.group(1)), html.unescape(match.group(3)))
        )
    lines = []
    for y in sorted(rows):
        line = ""
        for x, text in sorted(rows[y]):
            line = line.ljust(round(x / 12.2)) + text
        lines.append(line.replace("\xa0", " "))
    return "\n".join(lines)


@asynccontextmanager
async def running_worker(storage: Storage, url: str) -> AsyncIterator[None]:
    """A real worker running ``tui_worker_app:handle`` on the storage while the block runs.

    On memory:// (one process only) it is a ``Queue`` in this process; elsewhere
    it is the ``jobqueue worker`` executable, SIGKILLed at the end.
    """
    if url.startswith("memory://"):
        queue: Queue[dict[str, object], dict[str, object]] = Queue(
            storage, block_timeout=0.2, visibility_timeout=5
        )
        queue.execute(handle)
        async with queue:
            yield
        return
    proc = await asyncio.create_subprocess_exec(
        JOBQUEUE,
        "worker",
        "tui_worker_app:handle",
        "--storage",
        url,
        "--visibility-timeout",
        "5",
        cwd=HERE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield
    finally:
        exited = proc.returncode
        if exited is None:
            proc.send_signal(signal.SIGKILL)
        _, err = await proc.communicate()
    if exited is not None:
        raise AssertionError(f"jobqueue worker exited early with {exited}: {err.decode()[-2000:]}")


class BareStorage(Storage):
    """A storage with the required primitives only: no ``Monitoring``, no lock, no control channel.

    Each primitive is the one of a ``MemoryStorage``, so jobs, events and
    workers are real; what a dashboard or ``jobqueue stats`` cannot do is list
    or count them, as on a third-party backend that offers no monitoring.
    """

    def __init__(self, inner: MemoryStorage | None = None) -> None:
        self.inner = inner or MemoryStorage()

    @property
    def name(self) -> str:
        return self.inner.name

    def _view(self, name: str) -> Self:
        return type(self)(self.inner.namespace(name))

    async def connect(self) -> None:
        await self.inner.connect()

    async def disconnect(self) -> None:
        await self.inner.disconnect()

    async def _enqueue(self, jobs: Sequence[NewJob]) -> list[EnqueueOutcome]:
        return await self.inner._enqueue(jobs)

    async def _claim(self, worker_id: str, lease_ms: int, limit: int, timeout_ms: int) -> list[Claim]:
        return await self.inner._claim(worker_id, lease_ms, limit, timeout_ms)

    async def _finish(self, worker_id: str, outcomes: Sequence[Finish]) -> list[bool]:
        return await self.inner._finish(worker_id, outcomes)

    async def _heartbeat(
        self, worker_id: str, ttl_ms: int | None, job_ids: Sequence[str], lease_ms: int, info: bytes
    ) -> dict[str, Revoked]:
        return await self.inner._heartbeat(worker_id, ttl_ms, job_ids, lease_ms, info)

    async def _unregister_worker(self, worker_id: str) -> None:
        await self.inner._unregister_worker(worker_id)

    async def _set_progress(self, job_id: str, worker_id: str, data: bytes) -> bool:
        return await self.inner._set_progress(job_id, worker_id, data)

    async def _cancel(self, job_id: str, *, abort: bool) -> JobState | None:
        return await self.inner._cancel(job_id, abort=abort)

    async def _recover_stalled(self) -> Recovery:
        return await self.inner._recover_stalled()

    async def _get_many(self, job_ids: Sequence[str]) -> list[JobRecord | None]:
        return await self.inner._get_many(job_ids)

    async def _update_ttl(self, job_id: str, ttl_ms: int) -> TtlOutcome:
        return await self.inner._update_ttl(job_id, ttl_ms)

    def _subscribe(
        self, channels: frozenset[Channel]
    ) -> AbstractAsyncContextManager[AsyncIterator[StorageEvent]]:
        return self.inner._subscribe(channels)
