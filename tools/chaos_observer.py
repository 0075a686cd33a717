"""What a chaos run reads through the storage: every accepted job until it is seen ``completed``, and what is left.

``Observer`` follows the producers' files and polls the storage for the state
of every accepted job until it reads ``completed`` (results expire after
``result_ttl``, so it must look often enough: a poll gap as long as the TTL
makes the run fail as unverifiable). ``storage_size`` counts what a namespace
holds once the results expired; ``empty_worker_dirs`` what the file storage
left behind.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
from jobqueue import JobQueueError, JobState, Storage
from redis.asyncio import Redis, RedisCluster

from tools.chaos_config import ChaosConfig, RunFiles

__all__ = ["Observer", "empty_worker_dirs", "storage_size"]

_BATCH = 500
_COUNTED_DIRS = ("jobs", "queue", "scheduled", "processing", "workers", "expiry")


class Observer:
    """Reads the state of every accepted job through the storage until it is ``completed``."""

    def __init__(self, storage: Storage, files: RunFiles, config: ChaosConfig) -> None:
        self.storage = storage
        self.files = files
        self.interval = min(1.0, config.result_ttl / 4)
        self.pending: dict[str, float] = {}  # accepted, not yet seen completed
        self.watching: dict[str, float] = {}  # enqueue_and_wait called, not yet accepted
        self.completed: dict[str, float] = {}  # first time seen completed
        self.missing: dict[str, float] = {}  # accepted, then no record before being seen completed
        self.failed: dict[str, str] = {}
        self.max_gap = 0.0
        self.errors = 0
        self._offsets: dict[Path, int] = {}

    def snapshot(self) -> dict[str, object]:
        """What was read, as JSON-ready data."""
        return {
            "completed": self.completed,
            "pending": self.pending,
            "missing": self.missing,
            "failed": self.failed,
            "max_gap": self.max_gap,
            "errors": self.errors,
        }

    def _tail_producers(self) -> None:
        for path in self.files.producers():
            with path.open("rb") as stream:
                stream.seek(self._offsets.get(path, 0))
                data = stream.read()
            end = data.rfind(b"\n") + 1
            self._offsets[path] = self._offsets.get(path, 0) + end
            for line in data[:end].decode().splitlines():
                parts = line.split()
                if not parts or len(parts) < 3 or parts[1] in self.completed or parts[1] in self.missing:
                    continue
                if parts[0] == "A":
                    self.watching.pop(parts[1], None)
                    self.pending.setdefault(parts[1], float(parts[-1]))
                elif parts[0] == "W+":
                    # enqueue_and_wait says "accepted" only when it returns: watch its job from the start
                    self.watching.setdefault(parts[1], float(parts[-1]))

    async def poll(self) -> None:
        """One pass: learn new accepted ids, read the state of every pending one."""
        self._tail_producers()
        ids = list(self.pending) + list(self.watching)
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start : start + _BATCH]
            records = await self.storage.get_many(chunk)
            now = time.time()
            for job_id, record in zip(chunk, records, strict=True):
                accepted = job_id in self.pending
                if record is None:
                    if not accepted:
                        continue  # not enqueued yet (or never: the producer retries and says so)
                    self.missing[job_id] = now
                elif record.state is JobState.COMPLETED:
                    self.completed[job_id] = now
                elif record.state is JobState.FAILED:
                    self.failed[job_id] = record.state.value
                else:
                    continue
                self.pending.pop(job_id, None)
                self.watching.pop(job_id, None)

    async def run(self) -> None:
        """Poll until cancelled; storage outages (a server restart) are waited out."""
        last = time.monotonic()
        while True:
            try:
                await self.poll()
            except JobQueueError:
                self.errors += 1
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now
            await asyncio.sleep(self.interval)


async def storage_size(config: ChaosConfig) -> tuple[int, list[str]]:
    """How much the queue holds: Redis keys under the prefix, entries under the namespace dirs, or rows."""
    if config.backend == "file":
        return await asyncio.to_thread(_file_entries, Path(unquote(urlsplit(config.url).path)))
    if config.backend == "postgres":
        return await _postgres_rows(config.url)
    parts = urlsplit(config.url)
    prefix = parse_qs(parts.query)["prefix"][0]
    server_url = parts._replace(query="").geturl()
    # On a cluster, scan_iter walks every master.
    client = (
        _cluster_client(server_url)
        if urlsplit(server_url).scheme.endswith("+cluster")
        else Redis.from_url(server_url)
    )
    try:
        keys = [key.decode() async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    finally:
        await client.aclose()
    return len(keys), sorted(keys)


async def _postgres_rows(url: str) -> tuple[int, list[str]]:
    """Rows of the run's schema, expired or not: jobs, worker registrations and locks, as ``table:key``."""
    parts = urlsplit(url)
    schema = parse_qs(parts.query)["schema"][0]
    if not schema.replace("_", "").isalnum() or not schema.islower():
        raise ValueError(f"unexpected schema name {schema!r}")  # it is formatted into the SQL below
    conn = await asyncpg.connect(parts._replace(query="").geturl())
    try:
        rows = await conn.fetch(
            f"SELECT 'jobs', id FROM {schema}.jobs UNION ALL SELECT 'workers', id FROM {schema}.workers"
            f" UNION ALL SELECT 'locks', key FROM {schema}.locks"
        )
    finally:
        await conn.close()
    return len(rows), sorted(f"{table}:{bytes(key).decode(errors='replace')}" for table, key in rows)


def _cluster_client(url: str) -> RedisCluster:
    """A client of the cluster of a ``redis+cluster://host:port[,host:port…]`` URL, from its first seed."""
    seed = urlsplit(url).netloc.rpartition("@")[2].split(",")[0]
    host, _, port = seed.rpartition(":")
    return RedisCluster(host=host, port=int(port))


def _file_entries(root: Path) -> tuple[int, list[str]]:
    """Files under the namespaces' job and worker dirs (not the dirs: see ``empty_worker_dirs``)."""
    found: list[str] = []
    namespaces = [path for path in root.iterdir() if path.is_dir()] if root.exists() else []
    for namespace in namespaces:
        for name in _COUNTED_DIRS:
            for dirpath, _, filenames in os.walk(namespace / name):
                found += [os.path.join(dirpath, entry) for entry in filenames]
    return len(found), sorted(os.path.relpath(path, root) for path in found)


def empty_worker_dirs(config: ChaosConfig) -> int:
    """FileStorage: ``processing/<worker>`` directories left behind (one per worker process ever)."""
    if config.backend != "file":
        return 0
    root = Path(unquote(urlsplit(config.url).path))
    return sum(
        1
        for namespace in root.iterdir()
        if (namespace / "processing").is_dir()
        for entry in (namespace / "processing").iterdir()
        if entry.is_dir() and not any(entry.iterdir())
    )
