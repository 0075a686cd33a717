"""``list_jobs`` paging: the cursor format every backend shares, and paging of records in reach (memory, files)."""

from __future__ import annotations

from collections.abc import Iterable

from .._types import JobState
from .records import JobPage, JobRecord

__all__ = ["cursor_of", "page_jobs", "parse_cursor"]


def page_jobs(
    records: Iterable[JobRecord], *, state: JobState | None, prefix: str, cursor: str | None, limit: int
) -> JobPage:
    """One page of ``records``, newest first (ties by id, descending), filtered by state and id prefix.

    The cursor is the position of the last record returned, so records added
    or removed between pages never shift the next page.

    Raises:
        ValueError: ``limit < 1``, or a cursor this function did not make.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")
    after = parse_cursor(cursor)
    matching = sorted(
        (
            record
            for record in records
            if (state is None or record.state is state)
            and record.id.startswith(prefix)
            and (after is None or (record.created_at, record.id) < after)
        ),
        key=lambda record: (record.created_at, record.id),
        reverse=True,
    )
    page = matching[:limit]
    more = len(matching) > limit
    return JobPage(page, cursor_of(page[-1]) if more else None)


def cursor_of(record: JobRecord) -> str:
    """The cursor of the page that follows ``record`` (newest first: older records, then lower ids)."""
    return f"{record.created_at}:{record.id}"


def parse_cursor(cursor: str | None) -> tuple[int, str] | None:
    """The ``(created_at, id)`` position a ``cursor_of`` cursor names; None for the first page.

    Raises:
        ValueError: a cursor ``cursor_of`` did not make.
    """
    if cursor is None:
        return None
    created_at, sep, job_id = cursor.partition(":")
    if not sep or not created_at.isdigit():
        raise ValueError(f"cursor {cursor!r} was not returned by list_jobs")
    return int(created_at), job_id
