"""``list_jobs`` paging for backends that hold their records in reach (memory, files)."""

from __future__ import annotations

from collections.abc import Iterable

from .._types import JobState
from .records import JobPage, JobRecord

__all__ = ["page_jobs"]


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
    after = _parse_cursor(cursor)
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
    return JobPage(page, f"{page[-1].created_at}:{page[-1].id}" if more else None)


def _parse_cursor(cursor: str | None) -> tuple[int, str] | None:
    if cursor is None:
        return None
    created_at, sep, job_id = cursor.partition(":")
    if not sep or not created_at.isdigit():
        raise ValueError(f"cursor {cursor!r} was not returned by list_jobs")
    return int(created_at), job_id
