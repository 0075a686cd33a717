"""jobqueue_postgres: the PostgreSQL storage for jobqueue.

``PostgresStorage("postgresql://user@host/db", schema="jobqueue")`` or
``jobqueue.storage_from_url("postgresql://user@host/db?schema=jobqueue&pool_max=10")``
(also ``postgres://``). Claims with ``FOR UPDATE SKIP LOCKED``, wakes workers
and waiters with ``LISTEN/NOTIFY``, and enqueues inside the application's own
transaction with ``enqueue_many_on(connection, jobs)``.
"""

from ._storage import PostgresStorage

__all__ = [
    "PostgresStorage",
]
