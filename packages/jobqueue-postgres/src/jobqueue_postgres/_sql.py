"""Every statement of the hot path, one per primitive, each mirroring the ``rules`` function it names.

The schema name is the only thing formatted into the text (validated to a
plain identifier); ids, namespaces, workers and data are always bound
parameters. Times come from the server's clock (``NOW``, fixed for a
statement), so every process agrees on leases and expiry. Each statement
that changes a job also sends its event with ``pg_notify`` in the same
statement, so the notification is delivered if and only if the change commits.

Joins back to ``jobs`` repeat their ids as ``id = ANY(...)``: the primary key
is then the obvious index whatever the table's statistics say (a fresh table
has none, and the planner would scan the whole namespace).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["JOB_COLUMNS", "NOW", "Statements"]

NOW = "floor(extract(epoch FROM statement_timestamp()) * 1000)::bigint"
"""Epoch milliseconds of the server's clock, the same all through one statement."""

JOB_COLUMNS = (
    "j.id, j.state, j.message, j.created_at, j.updated_at, j.attempts, j.worker_id, j.result, j.error,"
    " j.run_at, j.lease_until, j.expires_at, j.priority, j.abort_requested, j.progress"
)
"""The columns ``_records.to_record`` reads, in its order, from a ``jobs`` row aliased ``j``."""

_LIVE = f"(j.expires_at IS NULL OR j.expires_at > {NOW})"  # mirrors rules.is_live


@dataclass(frozen=True, slots=True)
class Statements:
    """The SQL of one schema. ``$1`` is the namespace (bytea) wherever there is one."""

    enqueue: str
    claim: str
    finish: str
    heartbeat: str
    unregister: str
    set_progress: str
    lock_job: str
    delete_job: str
    flag_abort: str
    set_expiry: str
    recover: str
    sweep: str
    get_many: str
    job_data: str
    notify: str
    compile_events: str

    @classmethod
    def for_schema(cls, s: str) -> Statements:
        """Build the statements for the quoted schema ``s``."""
        event = f"{s}.event_payload"
        return cls(
            # $2 ids, $3 messages, $4 delays, $5 priorities, $6 channel (of enqueued), $7 max deadline.
            # Duplicate ids within one batch were removed by the caller.
            enqueue=f"""
WITH input AS (
    SELECT * FROM unnest($2::bytea[], $3::bytea[], $4::bigint[], $5::integer[])
        WITH ORDINALITY AS t(id, message, delay_ms, priority, ord)
), inserted AS (
    -- mirrors rules.new_record: queued at the tail, or scheduled delay_ms from now.
    -- A record that is no longer live (rules.is_live) is replaced; a live one is kept (dedup).
    INSERT INTO {s}.jobs AS j (namespace, id, state, message, created_at, updated_at, priority, run_at, seq)
    SELECT $1, id, 'queued', message, {NOW}, {NOW}, priority,
           CASE WHEN delay_ms > 0 THEN least({NOW} + delay_ms, $7) END, nextval('{s}.job_seq')
    FROM input ORDER BY ord
    ON CONFLICT (namespace, id) DO UPDATE SET
        state = excluded.state, message = excluded.message, created_at = excluded.created_at,
        updated_at = excluded.updated_at, attempts = 0, worker_id = NULL, result = NULL, error = NULL,
        progress = NULL, run_at = excluded.run_at, lease_until = NULL, expires_at = NULL,
        priority = excluded.priority, abort_requested = false, seq = excluded.seq
    WHERE j.expires_at IS NOT NULL AND j.expires_at <= {NOW}
    RETURNING j.id
)
SELECT i.id, x.id IS NOT NULL AS accepted,
       CASE WHEN x.id IS NOT NULL THEN pg_notify($6, {event}('enqueued', i.id, {NOW}, NULL, NULL)) END,
       {JOB_COLUMNS}, {NOW} AS now
FROM input i
LEFT JOIN inserted x ON x.id = i.id
LEFT JOIN LATERAL (
    SELECT * FROM {s}.jobs WHERE x.id IS NULL AND namespace = $1 AND id = i.id OFFSET 0  -- one key lookup per duplicate
) j ON true
ORDER BY i.ord""",
            # $2 worker, $3 lease ms, $4 limit, $5 channel (of processing), $6 max deadline.
            claim=f"""
WITH ready AS (
    -- rules.claim_order: higher priority first, then first in, first out
    SELECT id, priority, seq, NULL::bigint AS due_at FROM {s}.jobs
    WHERE namespace = $1 AND state = 'queued' AND run_at IS NULL
    ORDER BY priority DESC, seq LIMIT $4
    FOR UPDATE SKIP LOCKED
), due AS (
    -- rules.is_due, then rules.promote: a due job joins the tail, after the jobs already ready
    SELECT id, priority, seq, run_at AS due_at FROM {s}.jobs
    WHERE namespace = $1 AND run_at <= {NOW} AND state IN ('queued', 'failing')
    ORDER BY run_at, seq LIMIT $4
    FOR UPDATE SKIP LOCKED
), chosen AS (
    SELECT * FROM (SELECT * FROM ready UNION ALL SELECT * FROM due) c
    ORDER BY priority DESC, due_at NULLS FIRST, seq LIMIT $4
), claimed AS (
    -- mirrors rules.claim: processing under the worker, one more attempt, a fresh lease
    UPDATE {s}.jobs j SET state = 'processing', worker_id = $2, attempts = j.attempts + 1,
        lease_until = least({NOW} + $3, $6), run_at = NULL, abort_requested = false, updated_at = {NOW}
    FROM chosen c WHERE j.namespace = $1 AND j.id = c.id AND j.id = ANY(ARRAY(SELECT id FROM chosen))
    RETURNING j.id, j.message, j.attempts, c.priority, c.due_at, c.seq
), next_due AS (
    -- ms until the next scheduled job or retry falls due (NULL: none), as of the statement's start
    SELECT min(run_at) - {NOW} AS ms FROM {s}.jobs
    WHERE namespace = $1 AND run_at IS NOT NULL AND state IN ('queued', 'failing')
)
SELECT id, message, attempts, pg_notify($5, {event}('processing', id, {NOW}, $2, NULL)),
       (SELECT ms FROM next_due) AS next_due, priority, due_at, seq
FROM claimed
UNION ALL
-- nothing claimed: one row with only next_due
SELECT NULL, NULL, NULL, NULL, (SELECT ms FROM next_due), NULL, NULL, NULL
WHERE NOT EXISTS (SELECT 1 FROM claimed)
ORDER BY priority DESC, due_at NULLS FIRST, seq""",
            # $2 worker, $3 ids, $4 kinds, $5 data, $6 ms, $7 inline data, $8 channel of completed and failed,
            # $9 max deadline, $10 channel of failing and requeued.
            finish=f"""
WITH input AS (
    SELECT * FROM unnest($3::bytea[], $4::text[], $5::bytea[], $6::bigint[], $7::bytea[])
        WITH ORDINALITY AS t(id, kind, data, ms, inline, ord)
), finished AS (
    -- mirrors rules.finish, for jobs the worker owns (rules.owned); the abort flag is cleared
    UPDATE {s}.jobs j SET
        state = CASE i.kind WHEN 'complete' THEN 'completed' WHEN 'fail' THEN 'failed'
                            WHEN 'retry' THEN 'failing' ELSE 'queued' END,
        result = CASE WHEN i.kind = 'complete' THEN i.data ELSE j.result END,
        error = CASE WHEN i.kind IN ('fail', 'retry') THEN i.data ELSE j.error END,
        expires_at = CASE WHEN i.kind IN ('complete', 'fail') THEN least({NOW} + i.ms, $9) ELSE j.expires_at END,
        run_at = CASE WHEN i.kind = 'retry' THEN least({NOW} + i.ms, $9) END,
        attempts = CASE WHEN i.kind = 'release' THEN greatest(j.attempts - 1, 0) ELSE j.attempts END,
        seq = CASE WHEN i.kind = 'release' THEN -nextval('{s}.job_seq') ELSE j.seq END,
        worker_id = NULL, lease_until = NULL, abort_requested = false, updated_at = {NOW}
    FROM input i
    WHERE j.namespace = $1 AND j.id = i.id AND j.id = ANY($3::bytea[]) AND j.state = 'processing' AND j.worker_id = $2
    RETURNING j.id
)
SELECT i.ord, f.id IS NOT NULL,
       CASE WHEN f.id IS NOT NULL THEN pg_notify(CASE WHEN i.kind IN ('complete', 'fail') THEN $8 ELSE $10 END, {event}(
           CASE i.kind WHEN 'complete' THEN 'completed' WHEN 'fail' THEN 'failed'
                       WHEN 'retry' THEN 'failing' ELSE 'requeued' END,
           i.id, {NOW}, $2, i.inline)) END
FROM input i LEFT JOIN finished f ON f.id = i.id
ORDER BY i.ord""",
            # $2 worker, $3 ttl ms (NULL: no registration), $4 ids, $5 lease ms, $6 max deadline,
            # $7 channel (of worker_joined), $8 info.
            heartbeat=f"""
WITH previous AS (
    SELECT expires_at FROM {s}.workers WHERE namespace = $1 AND id = $2 AND $3::bigint IS NOT NULL
), registered AS (
    -- the worker registry: a registration lives until now + ttl (swept by the leader after)
    INSERT INTO {s}.workers (namespace, id, last_seen, expires_at, info)
    SELECT $1, $2, {NOW}, least({NOW} + $3, $6), $8 WHERE $3::bigint IS NOT NULL
    ON CONFLICT (namespace, id) DO UPDATE
    SET last_seen = excluded.last_seen, expires_at = excluded.expires_at, info = excluded.info
    -- mirrors rules.register_worker: worker_joined unless the registration was live (a
    -- data-modifying CTE runs to completion, RETURNING included, even though nothing reads it)
    RETURNING CASE WHEN NOT EXISTS (SELECT 1 FROM previous WHERE expires_at > {NOW})
        THEN pg_notify($7, {event}('worker_joined', ''::bytea, {NOW}, $2, NULL)) END
), owned AS (
    -- rules.owned
    SELECT id, abort_requested FROM {s}.jobs
    WHERE namespace = $1 AND id = ANY($4::bytea[]) AND state = 'processing' AND worker_id = $2
    FOR UPDATE
), renewed AS (
    -- mirrors rules.renew: a lease only moves forward
    UPDATE {s}.jobs j SET lease_until = least({NOW} + $5, $6)
    FROM owned o
    WHERE j.namespace = $1 AND j.id = o.id AND j.id = ANY($4::bytea[]) AND (j.lease_until IS NULL OR j.lease_until < least({NOW} + $5, $6))
)
SELECT id, abort_requested FROM owned""",
            # $2 worker, $3 channel (of worker_left). A worker that still holds jobs stays listed, lapsed, until they are recovered.
            unregister=f"""
WITH holds AS (
    SELECT EXISTS (SELECT 1 FROM {s}.jobs WHERE namespace = $1 AND worker_id = $2 AND state = 'processing') AS held
), previous AS (
    SELECT expires_at FROM {s}.workers WHERE namespace = $1 AND id = $2
), lapsed AS (
    UPDATE {s}.workers SET expires_at = least(expires_at, {NOW})
    WHERE namespace = $1 AND id = $2 AND (SELECT held FROM holds)
), gone AS (
    DELETE FROM {s}.workers WHERE namespace = $1 AND id = $2 AND NOT (SELECT held FROM holds)
)
-- mirrors rules.unregister_worker: worker_left when the registration was live
SELECT pg_notify($3, {event}('worker_left', ''::bytea, {NOW}, $2, NULL)) FROM previous WHERE expires_at > {NOW}""",
            # $2 id, $3 worker, $4 data, $5 channel (of progress).
            set_progress=f"""
WITH stored AS (
    -- mirrors rules.set_progress (rules.owned)
    UPDATE {s}.jobs SET progress = $4
    WHERE namespace = $1 AND id = $2 AND state = 'processing' AND worker_id = $3
    RETURNING id
)
SELECT pg_notify($5, {event}('progress', id, {NOW}, $3, $4)) FROM stored""",
            # cancel and update_ttl: read under a row lock, decide with rules, then write.
            lock_job=f"""
SELECT {JOB_COLUMNS}, {NOW} AS now FROM {s}.jobs j
WHERE j.namespace = $1 AND j.id = $2 AND {_LIVE}
FOR UPDATE""",
            delete_job=f"DELETE FROM {s}.jobs WHERE namespace = $1 AND id = $2",
            flag_abort=f"UPDATE {s}.jobs SET abort_requested = true WHERE namespace = $1 AND id = $2",
            set_expiry=f"UPDATE {s}.jobs SET expires_at = $3 WHERE namespace = $1 AND id = $2",
            # $2 limit, $3 channel (of stalled and requeued).
            recover=f"""
WITH stalled AS (
    -- rules.is_stalled, oldest lease first
    SELECT id, worker_id, lease_until FROM {s}.jobs
    WHERE namespace = $1 AND state = 'processing' AND lease_until <= {NOW}
    ORDER BY lease_until, id LIMIT $2
    FOR UPDATE SKIP LOCKED
), placed AS (
    -- head positions, taken newest lease first, so the job that stalled first is claimed first
    SELECT id, worker_id, lease_until, -nextval('{s}.job_seq') AS seq
    FROM (SELECT * FROM stalled ORDER BY lease_until DESC, id DESC) newest_first
), recovered AS (
    -- mirrors rules.recover: back to the head of the queue, the attempt counted, the abort flag cleared
    UPDATE {s}.jobs j SET state = 'queued', worker_id = NULL, lease_until = NULL, abort_requested = false,
        updated_at = {NOW}, seq = p.seq
    FROM placed p WHERE j.namespace = $1 AND j.id = p.id AND j.id = ANY(ARRAY(SELECT id FROM placed))
    RETURNING j.id, p.worker_id, p.lease_until
)
SELECT id, worker_id,
       pg_notify($3, {event}('stalled', id, {NOW}, worker_id, NULL)),
       pg_notify($3, {event}('requeued', id, {NOW}, worker_id, NULL))
FROM recovered ORDER BY lease_until, id""",
            # The leader's sweep, across namespaces: expired records (no longer rules.is_live), at most
            # $2 of them, lapsed registrations that hold no job, expired locks; then the namespace's
            # next lease deadline (ms from now), read after the recovery statement committed.
            sweep=f"""
WITH gone_jobs AS (
    DELETE FROM {s}.jobs WHERE (namespace, id) IN (
        SELECT namespace, id FROM {s}.jobs WHERE expires_at <= {NOW} LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING 1
), gone_workers AS (
    DELETE FROM {s}.workers w WHERE w.expires_at <= {NOW} AND NOT EXISTS (
        SELECT 1 FROM {s}.jobs j WHERE j.namespace = w.namespace AND j.worker_id = w.id AND j.state = 'processing')
), gone_locks AS (
    DELETE FROM {s}.locks WHERE expires_at <= {NOW}
)
SELECT (SELECT count(*) FROM gone_jobs),
       (SELECT min(lease_until) - {NOW} FROM {s}.jobs WHERE namespace = $1 AND state = 'processing')""",
            get_many=f"""
SELECT {JOB_COLUMNS}, {NOW} AS now FROM {s}.jobs j
WHERE j.namespace = $1 AND j.id = ANY($2::bytea[]) AND {_LIVE}""",
            job_data=f"SELECT result, error, progress FROM {s}.jobs WHERE namespace = $1 AND id = $2",
            # $1 channel, $2 kind, $3 id, $4 worker, $5 data.
            notify=f"SELECT pg_notify($1, {event}($2, $3, {NOW}, $4, $5))",
            # PL/pgSQL compiles a function at its first call in a session: do it ahead.
            compile_events=f"SELECT {event}('enqueued', ''::bytea, 0, NULL, NULL)",
        )

    def warmups(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The hot statements with input that changes nothing (an empty namespace, no ids), to prepare them."""
        ns, channel, cap = b"", "jq_warm_up", 4_102_444_800_000  # nothing is claimed: no deadline is written
        return [
            (self.enqueue, (ns, [], [], [], [], channel, cap)),
            (self.claim, (ns, b"w", 1, 1, channel, cap)),
            (self.finish, (ns, b"w", [], [], [], [], [], channel, cap, channel)),
            (self.heartbeat, (ns, b"w", None, [], 1, cap, channel, b"")),
            (self.get_many, (ns, [])),
            (self.compile_events, ()),
        ]
