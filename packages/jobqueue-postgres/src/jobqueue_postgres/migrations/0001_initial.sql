-- jobqueue-postgres schema version 1.
-- Applied inside one transaction with search_path set to the storage's schema.
-- Needs PostgreSQL 14 (SQL-standard function bodies).
-- Ids, namespaces, worker ids and lock keys are bytea (UTF-8 bytes): any str is
-- a valid id (NUL included), and byte order is code-point order, as in Python.
-- Times are epoch milliseconds from the server's clock (statement_timestamp()).

CREATE SEQUENCE job_seq;

CREATE TABLE jobs (
    namespace       bytea   NOT NULL,
    id              bytea   NOT NULL,
    state           text    NOT NULL
        CHECK (state IN ('queued', 'processing', 'failing', 'completed', 'failed')),
    message         bytea   NOT NULL,
    created_at      bigint  NOT NULL,
    updated_at      bigint  NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    worker_id       bytea,
    result          bytea,
    error           bytea,
    progress        bytea,
    run_at          bigint,
    lease_until     bigint,
    expires_at      bigint,
    priority        integer NOT NULL DEFAULT 0,
    abort_requested boolean NOT NULL DEFAULT false,
    -- Claim order within a priority: tail positions count up from 1, head
    -- positions (released and recovered jobs) count down from -1.
    seq             bigint  NOT NULL,
    PRIMARY KEY (namespace, id)
);

-- Ready jobs in claim order (rules.claim_order).
CREATE INDEX jobs_ready ON jobs (namespace, priority DESC, seq)
    WHERE state = 'queued' AND run_at IS NULL;
-- Scheduled jobs and retries, by the time they fall due (rules.is_due).
CREATE INDEX jobs_scheduled ON jobs (namespace, run_at) WHERE run_at IS NOT NULL;
-- Running jobs by lease (rules.is_stalled) and by worker (list_workers).
CREATE INDEX jobs_leases ON jobs (namespace, lease_until) WHERE state = 'processing';
CREATE INDEX jobs_workers ON jobs (namespace, worker_id) WHERE state = 'processing';
-- Finished jobs by expiry, for the sweep (rules.is_live), across namespaces.
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
-- list_jobs: newest first.
CREATE INDEX jobs_listing ON jobs (namespace, created_at DESC, id DESC);

CREATE TABLE workers (
    namespace  bytea  NOT NULL,
    id         bytea  NOT NULL,
    last_seen  bigint NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX workers_expiry ON workers (expires_at);

CREATE TABLE locks (
    namespace  bytea  NOT NULL,
    key        bytea  NOT NULL,
    owner      bytea  NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (namespace, key)
);

-- Events for NOTIFY, built in the statement that changes the job so that the
-- notification is part of its transaction (delivered on commit, never for a
-- rollback). The bytes are exactly jobqueue.storage.encode_event's msgpack
-- array [kind, job_id, at, worker_id, data] (a test checks it byte for byte);
-- the payload is text, so it is base64, after a one-letter tag:
--   'e' + base64(event)               the whole event
--   'i' + base64(event without data)  the event was over the NOTIFY limit
--                                     (8000 bytes): the subscriber fetches the data.

CREATE FUNCTION msgpack_str(s bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE BEGIN ATOMIC
    SELECT CASE
        WHEN s IS NULL THEN '\xc0'::bytea
        WHEN length(s) < 32 THEN set_byte('\x00'::bytea, 0, 160 + length(s)) || s
        WHEN length(s) < 256 THEN '\xd9'::bytea || set_byte('\x00'::bytea, 0, length(s)) || s
        WHEN length(s) < 65536 THEN '\xda'::bytea || substring(int4send(length(s)) FROM 3) || s
        ELSE '\xdb'::bytea || int4send(length(s)) || s
    END;
END;

CREATE FUNCTION msgpack_bin(b bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE BEGIN ATOMIC
    SELECT CASE
        WHEN b IS NULL THEN '\xc0'::bytea
        WHEN length(b) < 256 THEN '\xc4'::bytea || set_byte('\x00'::bytea, 0, length(b)) || b
        WHEN length(b) < 65536 THEN '\xc5'::bytea || substring(int4send(length(b)) FROM 3) || b
        ELSE '\xc6'::bytea || int4send(length(b)) || b
    END;
END;

-- Non-negative integers only (event times are epoch milliseconds).
CREATE FUNCTION msgpack_uint(n bigint) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE BEGIN ATOMIC
    SELECT CASE
        WHEN n < 128 THEN set_byte('\x00'::bytea, 0, n::integer)
        WHEN n < 256 THEN '\xcc'::bytea || set_byte('\x00'::bytea, 0, n::integer)
        WHEN n < 65536 THEN '\xcd'::bytea || substring(int4send(n::integer) FROM 3)
        WHEN n < 4294967296 THEN '\xce'::bytea || substring(int8send(n) FROM 5)
        ELSE '\xcf'::bytea || int8send(n)
    END;
END;

CREATE FUNCTION event_bytes(kind text, id bytea, at bigint, worker bytea, data bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE BEGIN ATOMIC
    SELECT '\x95'::bytea || msgpack_str(convert_to(kind, 'UTF8')) || msgpack_str(id) || msgpack_uint(at)
        || msgpack_str(worker) || msgpack_bin(data);
END;

CREATE FUNCTION event_payload(kind text, id bytea, at bigint, worker bytea, data bytea) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    -- A payload must be shorter than 8000 bytes: 1 tag + 4 * ceil(n / 3) base64 characters.
    SELECT CASE
        WHEN 4 * ((length(event_bytes(kind, id, at, worker, data)) + 2) / 3) < 7999
            THEN 'e' || translate(encode(event_bytes(kind, id, at, worker, data), 'base64'), E'\n', '')
        WHEN 4 * ((length(event_bytes(kind, id, at, worker, NULL)) + 2) / 3) < 7999
            THEN 'i' || translate(encode(event_bytes(kind, id, at, worker, NULL), 'base64'), E'\n', '')
        -- Only a worker id of several kilobytes gets here: drop it rather than fail the statement.
        ELSE 'i' || translate(encode(event_bytes(kind, id, at, NULL, NULL), 'base64'), E'\n', '')
    END;
END;
