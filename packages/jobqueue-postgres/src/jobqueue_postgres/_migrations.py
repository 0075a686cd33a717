"""Versioned schema migrations: SQL files shipped as package data, applied under an advisory lock.

``migrations/NNNN_name.sql`` holds version NNNN. On first connect (and by
``PostgresStorage.migrate``) every version above the schema's current one is
applied in order, each in its own transaction with ``search_path`` set to the
schema, and recorded in ``<schema>.schema_migrations``. A session-level
advisory lock keyed on the schema name serialises concurrent migrators: the
second one waits, then finds nothing left to do. A schema newer than this code
knows is refused: old code must not write rows whose meaning it does not know.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib.resources import files

from asyncpg import Connection
from asyncpg.pool import PoolConnectionProxy
from jobqueue.storage import StorageError

__all__ = ["MIGRATIONS", "Migration", "migrate", "quote_schema", "validate_schema"]

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: its number, a name, and the SQL that reaches it from the version before."""

    version: int
    name: str
    sql: str


def _load() -> tuple[Migration, ...]:
    found: list[Migration] = []
    for entry in files("jobqueue_postgres").joinpath("migrations").iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(
            f"jobqueue_postgres migrations are not numbered 1..n: {[m.version for m in found]}"
        )
    return tuple(found)


MIGRATIONS = _load()
"""Every schema version this code knows, in order."""


def validate_schema(schema: object) -> str:
    """Check a schema name: lower-case letters, digits and ``_``, not starting with a digit, <= 63 bytes.

    The name is written into SQL as an identifier (it cannot be a bound
    parameter), so only names that need no quoting are accepted.

    Raises:
        ValueError: any other name.
    """
    if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema) or schema.startswith("pg_"):
        raise ValueError(
            f"schema must match [a-z_][a-z0-9_]* (at most 63 characters, not pg_*), got {schema!r}"
        )
    return schema


def quote_schema(schema: str) -> str:
    """The schema as a quoted SQL identifier (after ``validate_schema``)."""
    return '"' + validate_schema(schema) + '"'


def _lock_key(schema: str) -> int:
    # A stable signed 64-bit advisory lock key per schema (hashtext() is not guaranteed stable across versions).
    digest = hashlib.sha256(f"jobqueue-postgres migrate {schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def migrate(
    connection: Connection | PoolConnectionProxy, schema: str, migrations: tuple[Migration, ...] = MIGRATIONS
) -> int:
    """Bring ``schema`` up to the last of ``migrations``; return the version it is at.

    Raises:
        StorageError: the schema is newer than the code (its version is above every migration known).
    """
    quoted = quote_schema(schema)
    latest = migrations[-1].version if migrations else 0
    await connection.execute("SELECT pg_advisory_lock($1)", _lock_key(schema))
    try:
        # Look before creating: CREATE ... IF NOT EXISTS still needs the CREATE privilege, which an
        # application's role may lack once the schema is in place.
        if await connection.fetchval("SELECT to_regclass($1)", f"{quoted}.schema_migrations") is None:
            await connection.execute(
                f"CREATE SCHEMA IF NOT EXISTS {quoted};"
                f"CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        current: int = await connection.fetchval(
            f"SELECT coalesce(max(version), 0) FROM {quoted}.schema_migrations"
        )
        if current > latest:
            raise StorageError(
                f"PostgreSQL schema {schema!r} is at version {current}, newer than this jobqueue-postgres "
                f"knows (up to {latest}); upgrade jobqueue-postgres"
            )
        for migration in migrations:
            if migration.version <= current:
                continue
            async with connection.transaction():
                await connection.execute(f"SET LOCAL search_path TO {quoted}")
                await connection.execute(migration.sql)
                await connection.execute(
                    f"INSERT INTO {quoted}.schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            current = migration.version
        return current
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _lock_key(schema))
