-- jobqueue-postgres schema version 1.
-- Applied inside one transaction with search_path set to the storage's schema.
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

-- PL/pgSQL, one function: its plans are cached per session (SQL functions that
-- cannot be inlined are planned again at every statement), and it calls only
-- built-ins, so it works whatever the caller's search_path.
CREATE FUNCTION event_payload(kind text, id bytea, at bigint, worker bytea, data bytea) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    strings bytea[] := ARRAY[convert_to(kind, 'UTF8'), id, worker];
    parts bytea[] := ARRAY[]::bytea[];  -- msgpack of kind, id, worker
    s bytea;
    n bigint;
    stamp bytea;                        -- msgpack of at (a uint)
    body bytea := '\xc0'::bytea;        -- msgpack of data (bin, or nil)
    event bytea;
BEGIN
    FOREACH s IN ARRAY strings LOOP
        IF s IS NULL THEN
            parts := parts || '\xc0'::bytea;
        ELSE
            n := length(s);
            parts := parts || (CASE
                WHEN n < 32 THEN set_byte('\x00'::bytea, 0, 160 + n::integer)
                WHEN n < 256 THEN '\xd9'::bytea || set_byte('\x00'::bytea, 0, n::integer)
                WHEN n < 65536 THEN '\xda'::bytea || substring(int4send(n::integer) FROM 3)
                ELSE '\xdb'::bytea || int4send(n::integer) END || s);
        END IF;
    END LOOP;
    stamp := CASE
        WHEN at < 128 THEN set_byte('\x00'::bytea, 0, at::integer)
        WHEN at < 256 THEN '\xcc'::bytea || set_byte('\x00'::bytea, 0, at::integer)
        WHEN at < 65536 THEN '\xcd'::bytea || substring(int4send(at::integer) FROM 3)
        WHEN at < 4294967296 THEN '\xce'::bytea || substring(int8send(at) FROM 5)
        ELSE '\xcf'::bytea || int8send(at) END;
    IF data IS NOT NULL THEN
        n := length(data);
        body := CASE
            WHEN n < 256 THEN '\xc4'::bytea || set_byte('\x00'::bytea, 0, n::integer)
            WHEN n < 65536 THEN '\xc5'::bytea || substring(int4send(n::integer) FROM 3)
            ELSE '\xc6'::bytea || int4send(n::integer) END || data;
    END IF;
    -- A payload must be shorter than 8000 bytes: 1 tag + 4 * ceil(size / 3) base64 characters.
    event := '\x95'::bytea || parts[1] || parts[2] || stamp || parts[3] || body;
    IF 4 * ((length(event) + 2) / 3) < 7999 THEN
        RETURN 'e' || translate(encode(event, 'base64'), E'\n', '');
    END IF;
    event := '\x95'::bytea || parts[1] || parts[2] || stamp || parts[3] || '\xc0'::bytea;
    IF 4 * ((length(event) + 2) / 3) >= 7999 THEN
        -- Only a worker id of several kilobytes gets here: drop it rather than fail the statement.
        event := '\x95'::bytea || parts[1] || parts[2] || stamp || '\xc0c0'::bytea;
    END IF;
    RETURN 'i' || translate(encode(event, 'base64'), E'\n', '');
END
$$;
