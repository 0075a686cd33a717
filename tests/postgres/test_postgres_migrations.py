"""Versioned migrations: a new schema is created, an older one upgraded, a newer one refused."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from jobqueue.storage import StorageError
from jobqueue_postgres import PostgresStorage
from jobqueue_postgres._migrations import MIGRATIONS, Migration, migrate

pytestmark = pytest.mark.postgres

LATEST = MIGRATIONS[-1].version


async def _versions(admin: asyncpg.Connection, schema: str) -> list[int]:
    rows = await admin.fetch(f'SELECT version FROM "{schema}".schema_migrations ORDER BY version')
    return [row[0] for row in rows]


async def test_first_connect_creates_the_schema_at_the_latest_version(
    postgres_url: str, schema: str, admin: asyncpg.Connection
) -> None:
    async with PostgresStorage(postgres_url, schema=schema) as storage:
        assert await storage.migrate() == LATEST
        await storage.enqueue("a", b"m")
    assert await _versions(admin, schema) == list(range(1, LATEST + 1))
    assert await admin.fetchval(f'SELECT count(*) FROM "{schema}".jobs') == 1


async def test_an_older_schema_is_upgraded_in_order(schema: str, admin: asyncpg.Connection) -> None:
    extra = (
        Migration(LATEST + 1, "extra_table", "CREATE TABLE extra (n integer)"),
        Migration(LATEST + 2, "extra_row", "INSERT INTO extra VALUES (42)"),
    )
    assert await migrate(admin, schema) == LATEST
    assert await migrate(admin, schema, MIGRATIONS + extra[:1]) == LATEST + 1
    assert await migrate(admin, schema, MIGRATIONS + extra) == LATEST + 2
    assert await migrate(admin, schema, MIGRATIONS + extra) == LATEST + 2  # nothing left to do
    assert await admin.fetchval(f'SELECT n FROM "{schema}".extra') == 42
    assert await _versions(admin, schema) == list(range(1, LATEST + 3))


async def test_a_failing_migration_leaves_the_schema_at_the_version_before(
    schema: str, admin: asyncpg.Connection
) -> None:
    broken = Migration(LATEST + 1, "broken", "CREATE TABLE half (n integer); SELECT 1 / 0")
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrate(admin, schema, (*MIGRATIONS, broken))
    assert await _versions(admin, schema) == list(range(1, LATEST + 1))
    assert await admin.fetchval("SELECT to_regclass($1)", f'"{schema}".half') is None


async def test_a_newer_schema_is_refused_with_a_clear_error(
    postgres_url: str, schema: str, admin: asyncpg.Connection
) -> None:
    await migrate(admin, schema)
    await admin.execute(
        f"INSERT INTO \"{schema}\".schema_migrations (version, name) VALUES ({LATEST + 5}, 'future')"
    )
    storage = PostgresStorage(postgres_url, schema=schema)
    with pytest.raises(StorageError, match=rf"version {LATEST + 5}, newer than this jobqueue-postgres knows"):
        await storage.connect()
    with pytest.raises(StorageError, match="not connected"):
        await storage.enqueue("a", b"m")


async def test_concurrent_first_connects_migrate_once(
    postgres_url: str, schema: str, admin: asyncpg.Connection
) -> None:
    storages = [PostgresStorage(postgres_url, schema=schema, pool_min=0, pool_max=1) for _ in range(6)]
    await asyncio.gather(*(storage.connect() for storage in storages))
    try:
        assert await _versions(admin, schema) == list(range(1, LATEST + 1))
        outcomes = await asyncio.gather(*(storage.enqueue("same", b"m") for storage in storages))
        assert sum(outcome.accepted for outcome in outcomes) == 1
    finally:
        await asyncio.gather(*(storage.disconnect() for storage in storages))


async def test_migrations_ship_as_package_data() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))
    assert MIGRATIONS[0].name == "initial"
    assert "CREATE TABLE jobs" in MIGRATIONS[0].sql


async def test_a_role_without_create_privileges_uses_a_migrated_schema(
    postgres_url: str, schema: str, admin: asyncpg.Connection
) -> None:
    if os.environ.get("JOBQUEUE_POSTGRES_URL"):
        pytest.skip("logs in as a new role without a password: needs the tests' own trust-auth server")
    await migrate(admin, schema)
    role = f"app_{schema}"
    await admin.execute(f"CREATE ROLE {role} LOGIN")
    try:
        await admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {role}')
        await admin.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO {role}'
        )
        await admin.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA "{schema}" TO {role}')
        # PostgreSQL 15 grants PUBLIC no CREATE on the database nor on schema public: this role creates nothing.
        url = urlunsplit(
            urlsplit(postgres_url)._replace(netloc=f"{role}@{urlsplit(postgres_url).netloc.split('@')[-1]}")
        )
        async with PostgresStorage(url, schema=schema) as storage:
            assert (await storage.enqueue("a", b"m")).accepted
            assert [c.id for c in await storage.dequeue("w", lease_ms=1000, timeout_ms=0)] == ["a"]
    finally:
        await admin.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM {role}')
        await admin.execute(f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA "{schema}" FROM {role}')
        await admin.execute(f'REVOKE ALL ON SCHEMA "{schema}" FROM {role}')
        await admin.execute(f"DROP ROLE {role}")
