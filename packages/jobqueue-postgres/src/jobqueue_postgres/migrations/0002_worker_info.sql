-- What a worker registers with its heartbeat, opaque to the storage (the core's encoding of its
-- schedules, for dashboards); empty when none.
ALTER TABLE workers ADD COLUMN info bytea NOT NULL DEFAULT '';
