-- ARGV: worker, lease_ms, limit, landing_ms.
-- Returns {next_due_ms, id, message, attempt, id, message, attempt, ...}; next_due_ms is -1 unless
-- nothing was claimed. With nothing claimed and landing_ms > 0 the caller is about to BLMOVE
-- into its landing list: record until when it will claim what lands there, so that
-- recover_stalled can put a landed id back if the caller dies first.
local worker, lease, limit, landing = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
promote(now)
local out = {-1}
if claim_ready(worker, now, lease, limit, out) > 0 then
  redis.call('SADD', S_HOLDERS, worker)
  return out
end
if landing > 0 then
  redis.call('ZADD', Z_LANDINGS, now + landing, worker)
end
out[1] = next_due(now)
return out
