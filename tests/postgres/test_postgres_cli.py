"""The jobqueue CLI works unchanged on a postgresql:// storage URL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from jobqueue_postgres import PostgresStorage

from tests.e2e.cli_support import run_cli, spawn

pytestmark = pytest.mark.postgres


async def test_enqueue_stats_status_and_cancel(postgres_url: str, schema: str, tmp_path: Path) -> None:
    url = f"{postgres_url}?schema={schema}"

    async def cli(*args: str) -> str:
        result = await asyncio.to_thread(run_cli, *args, "--storage", url, "--queue", "q", cwd=tmp_path)
        assert result.returncode == 0, (result.stdout, result.stderr)
        return result.stdout

    assert "queued job-1" in await cli("enqueue", "job-1", '{"x": 1}')
    assert "queued" in await cli("status", "job-1")
    stats = await cli("stats")
    assert "queued" in stats and "1" in stats
    assert "cancelled job-1" in await cli("cancel", "job-1")
    async with PostgresStorage(postgres_url, schema=schema) as storage:
        assert await storage.namespace("q").get("job-1") is None


async def test_migrate_creates_the_schema_and_says_its_version(
    postgres_url: str, schema: str, tmp_path: Path
) -> None:
    url = f"{postgres_url}?schema={schema}"
    result = await asyncio.to_thread(run_cli, "migrate", "--storage", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "is at version 2" in result.stdout  # 0002_worker_info.sql is the newest
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema) == 1
    finally:
        await conn.close()


async def test_migrate_on_a_storage_without_a_schema_says_so(tmp_path: Path) -> None:
    result = await asyncio.to_thread(run_cli, "migrate", "--storage", "memory://", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "nothing to migrate" in result.stdout


async def test_the_worker_start_up_line_masks_the_password_option(
    postgres_url: str, schema: str, tmp_path: Path
) -> None:
    """``?password=`` is an accepted option: the worker's first log line names the URL without it."""
    secret = "Zqs3cretWorker"
    url = f"{postgres_url}?schema={schema}&password={secret}"  # the test server trusts local clients
    (tmp_path / "app.py").write_text("async def handle(job):\n    return job.payload\n")
    with spawn("worker", "app:handle", "--storage", url, cwd=tmp_path) as (_, log):
        line = await asyncio.to_thread(log.wait_for, "worker ", 60)
    assert "password=***" in line, line
    assert secret not in "".join(log.lines)
