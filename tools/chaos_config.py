"""Settings of a chaos run and the files its processes share.

The supervisor (``tools/chaos.py``) writes ``config.json`` into the run
directory; every role process (``tools/chaos_roles.py``) reads it. Each
process writes only its own append-only files, one line per record, with
``O_APPEND`` and one ``write`` per line, so a SIGKILL can cut a process short
but never interleave or tear a line written before it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from jobqueue import Storage, storage_from_url
from jobqueue_file import FileStorage

__all__ = ["Backend", "ChaosConfig", "RunFiles", "append_line", "make_storage"]

Backend = Literal["redis", "valkey", "file", "redis-cluster", "valkey-cluster", "postgres"]


_PAIRS = ("handler_sleep", "long_sleep", "fault_interval", "stop_extra", "server_downtime", "partition_extra")


@dataclass(frozen=True)
class ChaosConfig:
    """Every knob of a run. Durations in seconds."""

    backend: Backend
    url: str
    duration: float
    seed: int
    visibility_timeout: float = 2.0
    block_timeout: float = 1.0
    result_ttl: float = 8.0
    max_attempts: int = 100  # stalls count as attempts; a job must never fail for being unlucky
    lock_ttl: float = 2.0
    lock_renew: float = 0.5
    lock_retry: float = 0.5
    worker_concurrency: int = 4
    handler_sleep: tuple[float, float] = (0.05, 0.4)
    long_share: float = 0.02  # share of jobs that run long_sleep: lease renewal must work under faults
    long_sleep: tuple[float, float] = (6.0, 8.0)  # 3-4 visibility timeouts
    producer_rate: float = 12.0  # jobs per second per producer
    wait_share: float = 0.3  # share of jobs sent with enqueue_and_wait
    max_waits: int = 6  # enqueue_and_wait calls in flight per producer
    wait_timeout: float = 20.0
    fault_interval: tuple[float, float] = (3.0, 6.0)
    first_fault: float = 3.0
    stop_extra: tuple[float, float] = (1.0, 3.0)  # a SIGSTOP lasts visibility_timeout plus this
    server_downtime: tuple[float, float] = (0.3, 1.5)
    partition_extra: tuple[float, float] = (0.5, 1.5)  # a partition lasts visibility_timeout plus this
    partition: str = ""  # "" when the server is in a network namespace, else why the fault is skipped
    drain_timeout: float = 60.0
    size_timeout: float = 30.0

    def dump(self, path: Path) -> None:
        """Write the config as JSON."""
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> ChaosConfig:
        """Read a config written by ``dump``."""
        data: dict[str, Any] = json.loads(path.read_text())
        for name in _PAIRS:
            data[name] = tuple(data[name])
        return cls(**data)


@dataclass(frozen=True)
class RunFiles:
    """Paths of one run directory."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def ledger(self) -> Path:
        """``job_id pid attempt t sleep``: one line per execution, written by the handler when it starts."""
        return self.root / "ledger"

    @property
    def completions(self) -> Path:
        """``job_id pid t``: written by a worker when the storage accepted its result."""
        return self.root / "completions"

    @property
    def reaper_events(self) -> Path:
        """``t pid event [job_id]``: leadership changes and stalled jobs seen by the reapers."""
        return self.root / "reaper-events"

    @property
    def observed(self) -> Path:
        """What the observer read through the storage (JSON), kept for a post-mortem of the report."""
        return self.root / "observed.json"

    @property
    def faults(self) -> Path:
        """The fault log written by the supervisor (JSON lines)."""
        return self.root / "faults.jsonl"

    def producer(self, index: int) -> Path:
        """What producer ``index`` did: ``A id how t``, ``W+ id t``, ``W- id outcome t``, ``END t``."""
        return self.root / f"producer-{index}"

    def producers(self) -> list[Path]:
        """Every producer file of the run."""
        return sorted(self.root.glob("producer-*"))

    def log(self, role: str, index: int) -> Path:
        """stdout and stderr of one role process."""
        return self.root / "logs" / f"{role}-{index}.log"


def append_line(path: Path, line: str) -> None:
    """Append one line with a single ``write`` on an ``O_APPEND`` descriptor (flushed at once)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def make_storage(config: ChaosConfig, *, observer: bool = False) -> Storage:
    """The storage of the run, from its URL.

    FileStorage is built directly to sweep expired records every second (the
    URL cannot set ``cleanup_interval``; the default 10 s would stretch the
    final size check). The observer's Redis connection gives up a read after
    5 s: a partition then shows as storage errors (nothing completes while
    the link is down), not as one long call that looks like a gap in its polls.
    The roles keep the library's defaults: those are what the run tests.
    """
    if config.backend == "file":
        return FileStorage(unquote(urlsplit(config.url).path), cleanup_interval=1.0)
    if observer and urlsplit(config.url).scheme in ("redis", "valkey"):
        return storage_from_url(f"{config.url}{'&' if '?' in config.url else '?'}socket_timeout=5")
    return storage_from_url(config.url)
