"""A worked example of a third-party jobqueue storage: SQLite, stdlib only (see README.md)."""

from .sqlite_storage import SqliteStorage

__all__ = ["SqliteStorage"]
