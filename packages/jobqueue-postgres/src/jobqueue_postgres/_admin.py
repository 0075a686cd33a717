"""Monitoring and the leader lock of ``PostgresStorage``, as a mixin over its shared connections.

These statements are not on the hot path; like the others, ids and namespaces
are bound parameters and only the validated schema name is formatted in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jobqueue import JobState
from jobqueue.storage import JobPage, WorkerRecord, cursor_of, parse_cursor, rules

from ._connection import Plumbing
from ._events import wake_channel
from ._records import encode_name, present, to_record
from ._sql import JOB_COLUMNS, NOW

__all__ = ["PostgresAdminMixin"]

_LIVE = f"(j.expires_at IS NULL OR j.expires_at > {NOW})"  # mirrors rules.is_live
# The state readers see: a due job is shown promoted (rules.promote), as _records.present does.
_SHOWN_STATE = f"""(CASE WHEN j.run_at <= {NOW} AND j.state IN ('queued', 'failing') THEN 'queued'
                         ELSE j.state END)"""


class PostgresAdminMixin(Plumbing):
    """``Monitoring`` (counts, listing, namespaces, workers, purge, retry) and ``LeaderLock``."""

    _ns: bytes
    _channel: str

    def _q(self, sql: str) -> str:
        return sql.replace("{s}", '"' + self._shared.options.schema + '"')

    async def _admin_fetch(self, context: str, sql: str, *args: Any) -> list[Any]:
        return await self._fetch(None, context, self._q(sql), *args)

    # --------------------------------------------------------------- monitoring

    async def _counts(self) -> Mapping[JobState, int]:
        rows = await self._admin_fetch(
            "counts",
            f"SELECT {_SHOWN_STATE}, count(*) FROM {{s}}.jobs j WHERE j.namespace = $1 AND {_LIVE} GROUP BY 1",
            self._ns,
        )
        counts = dict.fromkeys(JobState, 0)
        for state, count in rows:
            counts[JobState(state)] = count
        return counts

    async def _list_jobs(
        self, state: JobState | None, prefix: str, cursor: str | None, limit: int
    ) -> JobPage:
        after = parse_cursor(cursor)
        rows = await self._admin_fetch(
            "list_jobs",
            f"""SELECT {JOB_COLUMNS}, {NOW} FROM {{s}}.jobs j
                WHERE j.namespace = $1 AND {_LIVE} AND ($2::text IS NULL OR {_SHOWN_STATE} = $2)
                  AND substring(j.id FROM 1 FOR length($3::bytea)) = $3::bytea
                  AND ($4::bigint IS NULL OR (j.created_at, j.id) < ($4, $5::bytea))
                ORDER BY j.created_at DESC, j.id DESC LIMIT $6""",
            self._ns,
            None if state is None else state.value,
            encode_name(prefix, "prefix"),
            None if after is None else after[0],
            None if after is None else encode_name(after[1], "cursor"),
            limit + 1,
        )
        records = [present(to_record(row), row[15]) for row in rows]
        page = records[:limit]
        more = len(records) > limit
        return JobPage(page, cursor_of(page[-1]) if more else None)

    async def _list_namespaces(self) -> Iterable[str]:
        rows = await self._admin_fetch(
            "list_namespaces",
            f"""SELECT DISTINCT j.namespace FROM {{s}}.jobs j WHERE {_LIVE}
                UNION SELECT namespace FROM {{s}}.workers WHERE expires_at > {NOW}""",
        )
        return [bytes(row[0]).decode("utf-8") for row in rows]

    async def _list_workers(self) -> Iterable[WorkerRecord]:
        rows = await self._admin_fetch(
            "list_workers",
            f"""WITH held AS (
                    SELECT worker_id, array_agg(id ORDER BY updated_at, id) AS jobs FROM {{s}}.jobs
                    WHERE namespace = $1 AND state = 'processing' GROUP BY worker_id
                )
                SELECT coalesce(w.id, h.worker_id), coalesce(w.last_seen, 0), coalesce(w.expires_at, 0), h.jobs,
                       coalesce(w.info, '')
                FROM (SELECT * FROM {{s}}.workers WHERE namespace = $1) w
                FULL JOIN held h ON h.worker_id = w.id
                WHERE h.worker_id IS NOT NULL OR w.expires_at > {NOW}""",
            self._ns,
        )
        return [
            WorkerRecord(
                bytes(row[0]).decode("utf-8"),
                row[1],
                row[2],
                tuple(bytes(job).decode("utf-8") for job in row[3] or ()),
                bytes(row[4]),
            )
            for row in rows
        ]

    async def _purge(self, states: frozenset[JobState]) -> int:
        rows = await self._admin_fetch(
            "purge",
            f"""WITH gone AS (
                    DELETE FROM {{s}}.jobs j WHERE j.namespace = $1 AND j.state = ANY($2::text[]) RETURNING j.expires_at
                )
                SELECT count(*) FROM gone j WHERE {_LIVE}""",
            self._ns,
            sorted(state.value for state in states),
        )
        count: int = rows[0][0]
        return count

    async def _retry_failed(self, job_id: str) -> bool:
        rows = await self._admin_fetch(
            "retry_failed",
            f"""WITH reset AS (
                    -- mirrors rules.reset_failed: queued at the tail, attempts and error cleared
                    UPDATE {{s}}.jobs j SET state = 'queued', attempts = 0, error = NULL, expires_at = NULL,
                        run_at = NULL, updated_at = {NOW}, seq = nextval('{{s}}.job_seq')
                    WHERE j.namespace = $1 AND j.id = $2 AND j.state = 'failed' AND {_LIVE}
                    RETURNING j.id
                )
                SELECT pg_notify($3, {{s}}.event_payload('enqueued', id, {NOW}, NULL, NULL)) FROM reset""",
            self._ns,
            encode_name(job_id, "job_id"),
            wake_channel(self._channel),
        )
        return bool(rows)

    # -------------------------------------------------------------- leader lock

    async def acquire_lock(self, key: str, owner: str, ttl_ms: int) -> bool:
        """Take ``key`` for ``owner`` for ``ttl_ms`` (a lease row), or renew it; False when another owner holds it."""
        rows = await self._admin_fetch(
            "acquire_lock",
            f"""INSERT INTO {{s}}.locks AS l (namespace, key, owner, expires_at)
                VALUES ($1, $2, $3, least({NOW} + $4, $5))
                ON CONFLICT (namespace, key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
                WHERE l.owner = excluded.owner OR l.expires_at <= {NOW}
                RETURNING true""",
            self._ns,
            encode_name(key, "key"),
            encode_name(owner, "owner"),
            min(ttl_ms, rules.MAX_DEADLINE_MS),
            rules.MAX_DEADLINE_MS,
        )
        return bool(rows)

    async def release_lock(self, key: str, owner: str) -> bool:
        """Release ``key`` if ``owner`` holds it; True when it held a live lock."""
        rows = await self._admin_fetch(
            "release_lock",
            f"DELETE FROM {{s}}.locks WHERE namespace = $1 AND key = $2 AND owner = $3 RETURNING expires_at > {NOW}",
            self._ns,
            encode_name(key, "key"),
            encode_name(owner, "owner"),
        )
        return bool(rows and rows[0][0])
