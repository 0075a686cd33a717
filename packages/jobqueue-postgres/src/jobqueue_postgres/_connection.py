"""What every view of one ``PostgresStorage`` shares: the pool, the listener, the statements, a reference count."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from jobqueue import JobQueueError
from jobqueue.storage import StorageError, map_exceptions

from ._deadline import deadline
from ._events import Drained, Listener
from ._migrations import migrate, quote_schema
from ._records import Options
from ._sql import Statements

__all__ = ["Conn", "Plumbing", "Shared", "pg_errors"]

Conn = asyncpg.Connection | PoolConnectionProxy
"""A connection of one's own or one lent by a pool."""

_DRIVER_ERRORS: dict[type[BaseException], type[JobQueueError]] = {
    asyncpg.PostgresError: StorageError,  # server errors, pg_terminate_backend (AdminShutdownError) included
    asyncpg.InterfaceError: StorageError,  # a closed connection, a protocol error
    asyncpg.InternalClientError: StorageError,  # a connection cut in the middle of a statement
    OSError: StorageError,  # refused, reset, timed out (TimeoutError is an OSError)
}


@contextmanager
def pg_errors(context: str) -> Iterator[None]:
    """Translate driver and socket failures into ``StorageError`` (the original kept as ``__cause__``)."""
    with map_exceptions(_DRIVER_ERRORS, f"postgres {context}"):
        yield


class Shared:
    """The connections of one storage and all its views; opened by the first ``connect``, closed by the last."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.sql = Statements.for_schema(quote_schema(options.schema))
        self.refs = 0
        self.drained: dict[str, Drained] = {}  # per channel: what the last claim that ran dry learnt
        self._pool: asyncpg.Pool | None = None
        self._listener: Listener | None = None
        self._lock = asyncio.Lock()

    @property
    def pool(self) -> asyncpg.Pool:
        """The connection pool.

        Raises:
            StorageError: not connected.
        """
        if self._pool is None:
            raise StorageError(
                f"postgres storage (schema {self.options.schema!r}) is not connected; call connect()"
            )
        return self._pool

    @property
    def listener(self) -> Listener:
        """The LISTEN connection's manager.

        Raises:
            StorageError: not connected.
        """
        if self._listener is None:
            raise StorageError(
                f"postgres storage (schema {self.options.schema!r}) is not connected; call connect()"
            )
        return self._listener

    async def open(self, channel: str) -> None:
        """Take one reference; the first opens the pool, migrates the schema and starts listening to ``channel``."""
        async with self._lock:
            if self.refs == 0:
                with pg_errors("connect"):
                    # Migrate on a connection of its own first, so that every pooled connection
                    # finds the schema in place and prepares the hot statements as it opens.
                    # Without a statement deadline: a migration may rightly take long.
                    conn = await asyncpg.connect(self.options.dsn, timeout=self.options.connect_timeout)
                    try:
                        await migrate(conn, self.options.schema)
                    finally:
                        await conn.close()
                    pool = await asyncpg.create_pool(
                        self.options.dsn,
                        min_size=self.options.pool_min,
                        max_size=self.options.pool_max,
                        init=self._warm,
                        reset=_keep_session,
                        timeout=self.options.connect_timeout,
                        server_settings=self._settings(),
                    )
                self._pool = pool
                self._listener = Listener(self._connect_listener, self.options.command_timeout)
                # In the background: the first blocking claim then finds its channel listened to already.
                self._listener.start(channel)
            self.refs += 1

    async def close(self) -> None:
        """Drop one reference; the last ends subscriptions and closes every connection."""
        async with self._lock:
            if self.refs <= 0:
                return
            self.refs -= 1
            if self.refs > 0:
                return
            pool, listener = self._pool, self._listener
            self._pool = self._listener = None
            if listener is not None:
                await listener.close()
            if pool is not None:
                try:
                    async with asyncio.timeout(10):
                        await pool.close()
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    pool.terminate()

    def _settings(self) -> dict[str, str]:
        """Session settings of our connections: the server gives up on a statement when the client does."""
        return {"statement_timeout": str(max(1, round(self.options.command_timeout * 1000)))}

    async def _warm(self, conn: Conn) -> None:
        """Prepare the hot statements on a new connection, so the first real call pays no parse or plan.

        Each runs once with empty input (no row changes); asyncpg keeps the
        prepared statement, and the server compiles ``event_payload`` once per session.
        """
        try:
            with deadline(conn, self.options.command_timeout):
                for sql, args in self.sql.warmups():
                    await conn.fetch(sql, *args)
        except asyncpg.PostgresError:
            pass  # an optimisation only: the real call prepares the statement itself

    async def _connect_listener(self) -> asyncpg.Connection:
        with pg_errors("listen"):
            return await asyncpg.connect(
                self.options.dsn, timeout=self.options.connect_timeout, server_settings=self._settings()
            )

    @asynccontextmanager
    async def connection(self, context: str) -> AsyncIterator[Conn]:
        """A pooled connection for ``command_timeout`` seconds, errors mapped."""
        with pg_errors(context):
            async with self.pool.acquire() as conn:
                with deadline(conn, self.options.command_timeout):
                    yield conn

    @asynccontextmanager
    async def transaction(self, context: str) -> AsyncIterator[Conn]:
        """A pooled connection inside a transaction (``command_timeout`` for all of it), errors mapped."""
        async with self.connection(context) as conn, conn.transaction():
            yield conn


class Plumbing:
    """Statements on the pool (or a given connection) with driver errors mapped, for the storage's mixins."""

    _shared: Shared

    async def _fetch(self, connection: Conn | None, context: str, sql: str, *args: Any) -> list[Any]:
        if connection is not None:  # the application's: its time limits are its own
            with pg_errors(context):
                return await connection.fetch(sql, *args)
        async with self._shared.connection(context) as conn:
            return await conn.fetch(sql, *args)

    async def _fetchrow(self, context: str, sql: str, *args: Any) -> Any:
        async with self._shared.connection(context) as conn:
            return await conn.fetchrow(sql, *args)

    async def _fetchval(self, context: str, sql: str, *args: Any) -> Any:
        async with self._shared.connection(context) as conn:
            return await conn.fetchval(sql, *args)

    async def _execute(self, context: str, sql: str, *args: Any) -> str:
        async with self._shared.connection(context) as conn:
            return await conn.execute(sql, *args)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool reset: nothing beyond asyncpg's own rollback of an open transaction.

    The default reset runs four statements (advisory unlock, ``CLOSE ALL``,
    ``UNLISTEN *``, ``RESET ALL``) every time a connection goes back to the
    pool: four of every five statements of an enqueue. The pool's connections
    are this storage's alone and leave no session state behind (``LISTEN``
    has its own connection; ``migrate`` releases its advisory lock in a
    ``finally``, and a lost connection drops it anyway), so the prepared
    statements are kept and nothing needs resetting.
    """
